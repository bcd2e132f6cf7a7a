//! GitLab / Heptapod coordinator client: implements `paas_actors::ports::Coordinator` (issue 4).
