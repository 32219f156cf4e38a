//! (being written) Secret sources: environment, files, HashiCorp Vault and AWS Secrets Manager.
