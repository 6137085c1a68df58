//! ConfigurationData model.
