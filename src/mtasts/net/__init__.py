"""All network I/O: DNS, the HTTPS policy fetch and the SMTP STARTTLS probe."""
