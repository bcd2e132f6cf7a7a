//! Configuration: the GitLab-Runner-style TOML file, parsed and validated (issue 2).
