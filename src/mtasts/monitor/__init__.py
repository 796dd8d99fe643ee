"""Monitoring of hosted domains: scheduled checks, alerts, notifications."""
