"""Cloud: ingest, storage, rules, worksites and the demo."""
