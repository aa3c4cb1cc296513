"""DAG modules for the scheduler's tests (``serve``): scheduled, manual and slow DAGs."""
