"""Many jobs, many machines: `dreamer batch` (jobs file, local pool or Ray, summary)."""
