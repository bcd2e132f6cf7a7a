//! Push of a deploy context to a Git remote with git2 (issue 5).
