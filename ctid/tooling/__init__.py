"""ctid.tooling: developer tools beside the product (benchmarks, sim-day, the demo, a throwaway
PostgreSQL, routing's simulation harness over pbxsim). Only `ctid.cli` dispatches here; the product
never does."""
