"""The analysts' outputs: batch scoring (in process or on Dask), the marketing report, shared KPIs and
the notebook API (`serving.reports.analyst`)."""
