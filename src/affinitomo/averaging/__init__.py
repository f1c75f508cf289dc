"""Subtomogram averaging without a template: references built from the particles themselves."""
