//! `[numbers]`: how caller numbers are normalised before the client lookup (PRODUCT §4).
//! `"091 555 0001"` and `"00385915550001"` both become `"+385915550001"` with
//! `country_code = "385"`, `national_prefix = "0"`, `international_prefix = "00"`.

use serde::Deserialize;

use super::{ConfigError, err};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumbersConfig {
    /// The country of national-format numbers, digits without `+` (e.g. `"385"`). Without
    /// it numbers are only cleaned of spaces and punctuation.
    #[serde(default)]
    pub country_code: Option<String>,
    /// The trunk prefix of national numbers (`"0"` in most of Europe).
    #[serde(default)]
    pub national_prefix: Option<String>,
    /// The prefix of international numbers (`"00"`, `"011"` in North America).
    #[serde(default)]
    pub international_prefix: Option<String>,
}

fn digits_only(path: &str, value: Option<&String>, errors: &mut Vec<ConfigError>) {
    if let Some(v) = value
        && (v.is_empty() || v.len() > 8 || !v.bytes().all(|b| b.is_ascii_digit()))
    {
        errors.push(err(path, format!("{v:?} must be 1 to 8 digits")));
    }
}

impl NumbersConfig {
    /// The problems of this section, with their key paths.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        digits_only(
            "numbers.country_code",
            self.country_code.as_ref(),
            &mut errors,
        );
        digits_only(
            "numbers.national_prefix",
            self.national_prefix.as_ref(),
            &mut errors,
        );
        digits_only(
            "numbers.international_prefix",
            self.international_prefix.as_ref(),
            &mut errors,
        );
        if self.national_prefix.is_some() && self.country_code.is_none() {
            errors.push(err(
                "numbers.national_prefix",
                "needs numbers.country_code (the country national numbers belong to)",
            ));
        }
        errors
    }

    /// As [`NumbersConfig::normalize`], for a number someone gives the server (the API, an
    /// import): an error when it is no telephone number, instead of the text as it came.
    pub fn given(&self, raw: &str) -> Result<String, switchboard_store::StoreError> {
        switchboard_store::normalize_number(&self.normalize(raw))
    }

    /// The number as the client directory stores it: E.164 with `+` when the rules tell
    /// the country, else cleaned of spaces and punctuation. Something that is no telephone
    /// number (`anonymous`, a name) is returned as it came.
    pub fn normalize(&self, raw: &str) -> String {
        let Ok(clean) = switchboard_store::normalize_number(raw) else {
            return raw.to_owned();
        };
        if clean.starts_with('+') {
            return clean;
        }
        if let Some(intl) = self.international_prefix.as_deref()
            && let Some(rest) = clean.strip_prefix(intl)
            && !rest.is_empty()
        {
            return format!("+{rest}");
        }
        if let (Some(cc), Some(national)) = (
            self.country_code.as_deref(),
            self.national_prefix.as_deref(),
        ) && let Some(rest) = clean.strip_prefix(national)
            && !rest.is_empty()
        {
            return format!("+{cc}{rest}");
        }
        // Without a national prefix rule, a number that already starts with the country
        // code is taken as international without its `+`.
        if let Some(cc) = self.country_code.as_deref()
            && self.national_prefix.is_none()
            && clean.starts_with(cc)
        {
            return format!("+{clean}");
        }
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn croatia() -> NumbersConfig {
        NumbersConfig {
            country_code: Some("385".into()),
            national_prefix: Some("0".into()),
            international_prefix: Some("00".into()),
        }
    }

    #[test]
    fn national_and_international_forms_become_e164() {
        let n = croatia();
        assert_eq!(n.normalize("091 555 0001"), "+385915550001");
        assert_eq!(n.normalize("00385915550001"), "+385915550001");
        assert_eq!(n.normalize("0915550123"), "+385915550123");
        assert_eq!(n.normalize("+385915550123"), "+385915550123");
        assert_eq!(n.normalize("0049301234567"), "+49301234567");
        assert_eq!(n.normalize("anonymous"), "anonymous");
    }

    #[test]
    fn without_rules_numbers_are_only_cleaned() {
        let n = NumbersConfig::default();
        assert_eq!(n.normalize("091 555-0001"), "0915550001");
        assert_eq!(n.normalize("+385 91 555 0001"), "+385915550001");
    }

    #[test]
    fn bad_values_name_their_key() {
        let n = NumbersConfig {
            country_code: Some("+385".into()),
            national_prefix: Some("0".into()),
            international_prefix: None,
        };
        let errors = n.validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "numbers.country_code");
        let orphan = NumbersConfig {
            national_prefix: Some("0".into()),
            ..NumbersConfig::default()
        };
        assert_eq!(orphan.validate()[0].path, "numbers.national_prefix");
    }
}
