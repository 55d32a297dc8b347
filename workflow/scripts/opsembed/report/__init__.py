"""The self-contained HTML report (results/report.html)."""
