//! (being written) The AWS credential chain for Bedrock and Secrets Manager.
