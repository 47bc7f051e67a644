"""What people run: check (a student's code against autograd), bench, report, the
gradient-check cell, training runs, plots and provenance.

Rule: may import the core, training, data and ``reference``; never the CLI, never argparse,
and no process-wide setting (backend, allocator) at import or call: the CLI makes those.
"""
