"""govflow services: the pure domain (core), the runtime, and one package per department."""
