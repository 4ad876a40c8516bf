"""Named benchmark suites that reproduce the papers' comparisons, with reports and plots."""
