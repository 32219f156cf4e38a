//! Asserting that an error never shows a secret.

use sre_core::secret::SecretError;

/// Panics when any of `secrets` appears in `err`'s `Display` or `Debug`.
pub(crate) fn assert_hidden(err: &SecretError, secrets: &[&str]) {
    let shown = format!("{err}\n{err:?}");
    for secret in secrets {
        assert!(
            !shown.contains(secret),
            "the error shows a secret ({secret:?}): {shown}"
        );
    }
}
