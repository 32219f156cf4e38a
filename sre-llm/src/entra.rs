//! (being written) Microsoft Entra ID tokens for Azure OpenAI: workload identity and managed identity.
