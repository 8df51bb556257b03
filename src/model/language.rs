//! The languages a site is written and read in.

/// Page language: picks template strings and date formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Language {
    Sv,
    En,
}

impl Language {
    pub fn parse(text: &str) -> Option<Language> {
        match text {
            "sv" => Some(Language::Sv),
            "en" => Some(Language::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Language::Sv => "sv",
            Language::En => "en",
        }
    }

    /// The language's name in itself, for links to a page in it.
    pub fn autonym(self) -> &'static str {
        match self {
            Language::Sv => "Svenska",
            Language::En => "English",
        }
    }
}

/// The languages a site publishes in (`[site] languages`): the first is
/// the site's own, in which incident text is written first; each further
/// one gets its own pages and feeds under its code. Never empty, never a
/// language twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Languages(Vec<Language>);

impl Languages {
    /// A site in one language.
    pub fn one(language: Language) -> Languages {
        Languages(vec![language])
    }

    /// `site` first, then `others` in order; `None` if a language repeats.
    pub fn new(site: Language, others: &[Language]) -> Option<Languages> {
        let mut all = vec![site];
        for language in others {
            if all.contains(language) {
                return None;
            }
            all.push(*language);
        }
        Some(Languages(all))
    }

    /// The site's language: the first.
    pub fn site(&self) -> Language {
        self.0[0]
    }

    /// The languages after the first.
    pub fn others(&self) -> &[Language] {
        &self.0[1..]
    }

    /// Every language, the site's first.
    pub fn all(&self) -> &[Language] {
        &self.0
    }

    /// The prefix of the outputs in `language`: `""` for the site's
    /// language, `"en/"` for English when it is a further one.
    pub fn prefix(&self, language: Language) -> &'static str {
        if language == self.site() {
            ""
        } else {
            match language {
                Language::Sv => "sv/",
                Language::En => "en/",
            }
        }
    }
}
