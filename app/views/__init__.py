"""Saved views of the CRM overview: a named set of its filters, sort and columns."""
