"""The diagnosis engine: what a sending MTA concludes about a domain, and how to fix it."""
