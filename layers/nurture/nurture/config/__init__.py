"""The user's configuration (config/*.yaml, validated at load) and the deployment's settings (environment)."""
