"""pgtally harness: SQL sources -> install/build, embedded servers, CLI."""
