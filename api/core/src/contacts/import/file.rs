//! An import file as read: UTF-8 with or without a byte-order mark, its delimiter, its header
//! and its rows; and the fields its column names suggest.

use super::row::Target;
use crate::custom_fields::Definitions;
use std::collections::HashSet;

const MAX_COLUMNS: usize = 500;

/// A staged file, as read.
#[derive(Debug, PartialEq, Eq)]
pub struct Inspected {
    pub columns: Vec<String>,
    pub delimiter: u8,
    pub rows: u64,
}

/// The text of a file: UTF-8, with or without a byte-order mark.
pub(super) fn text_of(bytes: &[u8]) -> Result<&str, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        format!("the file is not UTF-8 (line {line}); save it as \"CSV UTF-8\" and upload it again")
    })
}

/// The delimiter of the header line: whichever of `,`, `;` and tab it has most of outside
/// quotes (Excel writes `;` where the decimal separator is a comma); `,` when it has none.
pub fn detect_delimiter(text: &str) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for byte in text.bytes() {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(count) = counts.iter_mut().find(|(d, _)| *d == byte) {
                    count.1 += 1;
                }
            }
            _ => {}
        }
    }
    counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n)
        .map_or(b',', |(d, _)| *d)
}

pub(super) fn reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes())
}

/// Reads a file through: its delimiter, its header (named, unique columns) and its row count.
pub fn inspect(bytes: &[u8]) -> Result<Inspected, String> {
    let text = text_of(bytes)?;
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    let delimiter = detect_delimiter(text);
    let mut csv = reader(text, delimiter);
    let header = csv.headers().map_err(|e| format!("the header line is not CSV: {e}"))?;
    let columns: Vec<String> = header.iter().map(str::to_owned).collect();
    if columns.len() > MAX_COLUMNS {
        return Err(format!("the file has {} columns; at most {MAX_COLUMNS}", columns.len()));
    }
    if let Some(index) = columns.iter().position(String::is_empty) {
        return Err(format!("column {} of the header has no name", index + 1));
    }
    let mut seen = HashSet::new();
    if let Some(twice) = columns.iter().find(|c| !seen.insert(c.to_lowercase())) {
        return Err(format!("the header names `{twice}` twice"));
    }
    let mut rows = 0;
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(true) => rows += 1,
            Ok(false) => break,
            Err(e) => return Err(format!("row {}: {e}", rows + 1)),
        }
    }
    if rows == 0 {
        return Err("the file has a header and no rows".into());
    }
    Ok(Inspected {
        columns,
        delimiter,
        rows,
    })
}

/// Columns a header most likely means, by their names in English, German and French, and by
/// the workspace's custom fields' keys and labels.
pub fn suggest(columns: &[String], fields: &Definitions) -> Vec<(String, Target)> {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let mut taken: Vec<Target> = Vec::new();
    let mut suggestions = Vec::new();
    for column in columns {
        let name = squash(column);
        let target = match name.as_str() {
            "email" | "emailaddress" | "mail" | "emailadresse" | "courriel" | "adresseemail" => Some(Target::Email),
            "firstname" | "givenname" | "first" | "vorname" | "prenom" | "prénom" => Some(Target::FirstName),
            "lastname" | "surname" | "familyname" | "last" | "nachname" | "nom" => Some(Target::LastName),
            "phone" | "phonenumber" | "mobile" | "mobilephone" | "telephone" | "telefon" | "tel" | "téléphone" => {
                Some(Target::Phone)
            }
            "company" | "companyname" | "organization" | "organisation" | "account" | "firma" | "unternehmen"
            | "entreprise" | "société" => Some(Target::Company),
            "lifecyclestage" | "stage" => Some(Target::LifecycleStage),
            "tags" | "tag" | "labels" => Some(Target::Tags),
            "source" | "leadsource" => Some(Target::Source),
            consent if consent.starts_with("consent") => Target::parse(&format!("consent:{}", &consent[7..])),
            _ => fields
                .iter()
                .find(|definition| squash(&definition.key) == name || squash(&definition.label) == name)
                .map(|definition| Target::Custom(definition.key.clone())),
        };
        if let Some(target) = target.filter(|t| !taken.contains(t)) {
            taken.push(target.clone());
            suggestions.push((column.clone(), target));
        }
    }
    suggestions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_the_one_the_header_uses_most_outside_quotes() {
        assert_eq!(detect_delimiter("email,first name\na,b"), b',');
        assert_eq!(detect_delimiter("E-Mail;Vorname;\"Firma, GmbH\"\n"), b';');
        assert_eq!(detect_delimiter("email\tname\n"), b'\t');
        assert_eq!(detect_delimiter("\"a;b;c\",d\n"), b',');
        assert_eq!(detect_delimiter("email\n"), b',');
    }

    #[test]
    fn a_file_is_read_with_or_without_a_bom_and_refused_with_the_reason() {
        let with_bom = b"\xEF\xBB\xBFemail;Vorname\nann@example.com;Ann\n\"bo@example.com\";\"B; o\"\n";
        assert_eq!(
            inspect(with_bom),
            Ok(Inspected {
                columns: vec!["email".into(), "Vorname".into()],
                delimiter: b';',
                rows: 2
            })
        );
        assert!(inspect(b"email,first\n").unwrap_err().contains("no rows"));
        assert!(inspect(b"email,Email\na,b\n").unwrap_err().contains("twice"));
        assert!(inspect(b"email,,x\na,b,c\n").unwrap_err().contains("column 2"));
        assert!(inspect(b"email\nb\xE9b\n").unwrap_err().contains("UTF-8 (line 2)"));
        assert!(inspect(b"").unwrap_err().contains("empty"));
    }

    #[test]
    fn headers_suggest_their_fields_in_several_languages() {
        let columns: Vec<String> = [
            "E-Mail-Adresse",
            "Vorname",
            "Nachname",
            "Firma",
            "Tags",
            "Notes",
            "email",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let suggested: Vec<(String, String)> = suggest(&columns, &Definitions::default())
            .into_iter()
            .map(|(c, t)| (c, t.name()))
            .collect();
        assert_eq!(
            suggested,
            [
                ("E-Mail-Adresse", "email"),
                ("Vorname", "firstName"),
                ("Nachname", "lastName"),
                ("Firma", "company"),
                ("Tags", "tags"),
            ]
            .map(|(c, t)| (c.to_owned(), t.to_owned()))
        );
    }
}
