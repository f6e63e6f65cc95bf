"""For the demo and the tests only: our own servers, demo data, the demo report."""
