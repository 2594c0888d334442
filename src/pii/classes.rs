//! The one vocabulary of data-class names used by findings, policies, audit records and
//! evaluation files: extend it, never rename.

/// Every data class Airlock knows.
pub const DATA_CLASSES: &[&str] = &[
    "PERSON",
    "LOCATION",
    "ORGANIZATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN",
    "US_SSN",
    "US_BANK_ROUTING",
    "UK_NHS",
    "UK_NINO",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "URL",
    "DATE_OF_BIRTH",
    "PASSPORT",
    "DRIVER_LICENSE",
    "MEDICAL_RECORD",
    "CRYPTO_ADDRESS",
    "SECRET",
];

/// Whether `name` is a known data class.
pub fn is_known(name: &str) -> bool {
    DATA_CLASSES.contains(&name)
}
