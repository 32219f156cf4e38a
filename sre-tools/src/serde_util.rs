//! Serde helpers shared by the API object and report models.

use serde::{Deserialize, Deserializer};

/// Reads an absent or `null` field as the type's default (Kubernetes and Trivy both write `null`
/// for empty lists and objects).
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
