"""HTTP interfaces: REST API, policy host, certificate ask endpoint."""
