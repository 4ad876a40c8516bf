"""Feasibility layers: maps from a backbone's raw output to (near-)feasible allocations."""
