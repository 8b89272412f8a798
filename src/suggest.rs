//! "Did you mean …?" suggestions for misspelled keys, names and values.

/// The candidate closest to `word`, if one is close enough to be a plausible typo.
///
/// Ties are broken by candidate order, so results are deterministic for a sorted list.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let cand_lower = candidate.to_lowercase();
        if cand_lower == lower {
            return Some(candidate);
        }
        let distance = strsim::damerau_levenshtein(&lower, &cand_lower);
        let limit = (candidate.chars().count().max(word.chars().count()) / 3).max(1);
        let close =
            distance <= limit || (lower.len() >= 4 && (cand_lower.contains(&lower) || lower.contains(&cand_lower)));
        if close && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `" (did you mean `x`?)"` or an empty string.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates).map_or_else(String::new, |c| format!(" (did you mean `{c}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_ignores_unrelated_words() {
        let keys = ["imports", "region", "secret_prefix", "account_id"];
        assert_eq!(closest("improts", keys), Some("imports"));
        assert_eq!(closest("regoin", keys), Some("region"));
        assert_eq!(closest("prefix", keys), Some("secret_prefix"));
        assert_eq!(closest("Region", keys), Some("region"));
        assert_eq!(closest("zzz", keys), None);
        assert_eq!(did_you_mean("accountid", keys), " (did you mean `account_id`?)");
    }
}
