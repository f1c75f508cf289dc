"""Plots, one module per concern; all write PNG files atomically with the Agg backend."""
