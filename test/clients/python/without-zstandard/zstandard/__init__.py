# Put first on PYTHONPATH, this makes `import zstandard` fail as if python3-zstandard were
# not installed, without uninstalling the system package (make test-clients, docs/clients.md).
raise ImportError("zstandard is hidden by test/clients/python/without-zstandard (make test-clients)")
