//! Names of the job images and containers.

use super::error::LocalDockerError;

/// The deterministic resource (image, container) name of a job.
pub fn resource_name(unique_name: &str, job_id: i64) -> String {
    format!("{}{job_id}", name_prefix(unique_name))
}

/// `hpd-job-<identity lowercased>-`: what every resource name of a runner
/// of that identity starts with.
pub(super) fn name_prefix(unique_name: &str) -> String {
    format!("hpd-job-{}-", unique_name.to_lowercase())
}

/// Checks that `name` is safe to give the CLI as an image and container
/// name: Docker's lowercase repository charset, not option-like.
pub fn check_name(name: &str) -> Result<(), LocalDockerError> {
    let bad = |reason| LocalDockerError::InvalidName {
        name: name.chars().take(200).collect(),
        reason,
    };
    if name.is_empty() || name.len() > 128 {
        return Err(bad("must have 1 to 128 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Err(bad("only a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("must start with a letter or a digit"));
    }
    Ok(())
}

/// True if `name` is `<prefix><job id>`: another runner's unique name may
/// extend ours (`hpd-job-abc-` is a prefix of `hpd-job-abc-def-12`).
pub(super) fn is_job_name(prefix: &str, name: &str) -> bool {
    job_id_of(prefix, name).is_some()
}

/// The job id of `name` if it is `<prefix><job id>` (digits only).
pub(super) fn job_id_of(prefix: &str, name: &str) -> Option<i64> {
    name.strip_prefix(prefix)
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .and_then(|id| id.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_checked() {
        assert_eq!(resource_name("Runner-ABC", 42), "hpd-job-runner-abc-42");
        assert!(check_name("hpd-job-runner-abc-42").is_ok());
        for bad in ["", "-rm", "Upper", "a b", "a/b", "a:b", &"a".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
