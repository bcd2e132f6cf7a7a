//! Fake GitLab coordinator (runner API, job API, traces, custom attributes).
