//! URLs as they may be shown in errors, logs and reports: without the credentials a URL can
//! carry (`https://user:password@host/…`), its query (`?token=…`) or fragment. Every URL that
//! reaches output goes through [`shown`].

/// `url` with userinfo, query and fragment removed. Text that does not parse as a URL keeps
/// only what comes before a `?` or `#`, with anything up to an `@` in its authority dropped.
pub fn shown(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.has_host() {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
        }
        parsed.set_query(None);
        parsed.set_fragment(None);
        let mut text = parsed.to_string();
        // `Url` adds a `/` path to `http://host`; show what the user wrote.
        if !url.trim_end_matches(['?', '#']).ends_with('/') && parsed.path() == "/" {
            text.pop();
        }
        return text;
    }
    let before_query = url.split(['?', '#']).next().unwrap_or_default();
    match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => before_query.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn credentials_query_and_fragment_never_show() {
        assert_eq!(
            shown("https://admin:s3cret@push.example:9091/metrics/job/x?token=abc#frag"),
            "https://push.example:9091/metrics/job/x"
        );
        assert_eq!(shown("http://user@127.0.0.1:8200"), "http://127.0.0.1:8200");
        assert_eq!(shown("https://vault.example:8200/"), "https://vault.example:8200/");
        assert_eq!(shown("https://vault.example:8200"), "https://vault.example:8200");
        assert_eq!(shown("not a url:pw@x?y"), "not a url:pw@x");
        assert_eq!(shown("weird://us er:pw@host/p?q"), "weird://host/p");
    }
}
