//! Deploy context: Dockerfile, runner.toml and job.json pushed to a PAAS host (issue 5).
