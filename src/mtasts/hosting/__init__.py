"""Hosted MTA-STS: policies for many domains behind CNAME delegation."""
