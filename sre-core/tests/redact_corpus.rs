//! The redactor against a generated corpus: for each category of secret that once reached the
//! model, secrets are built from seeded random parts, embedded in realistic tool output (log
//! lines, env dumps, YAML, JSON, URLs, command lines) and must not survive `redact`, not even in
//! part; and look-alikes that are not secrets (image references, digests, pod names, UIDs,
//! resourceVersions, timestamps, prose) must come back unchanged.
//!
//! A failure lists every leak with its input and output. Seeds are fixed, so a failure
//! reproduces; change `SEEDS` to explore more of the space.

use std::fmt::Write as _;

use sre_core::Redactor;

/// Cases generated per category.
const SEEDS: u64 = 48;

// ---------------------------------------------------------------------------------------------
// A small seeded generator (`SplitMix64`), so the corpus is random-looking yet reproducible.

struct Rng(u64);

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const HEX: &str = "0123456789abcdef";
const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const B64: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
const B64URL: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
/// The encoding alphabets (RFC 4648), in their order.
const STD_B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const STD_B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Rng {
    fn new(category: &str, seed: u64) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325_u64;
        for b in category.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Self(h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next() % n64).unwrap_or(0)
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }

    fn chars(&mut self, alphabet: &str, len: usize) -> String {
        let a = alphabet.as_bytes();
        (0..len)
            .map(|_| char::from(a[self.below(a.len())]))
            .collect()
    }

    /// Random characters that contain at least one digit and one letter (as generated secrets
    /// do; the entropy rule asks for both).
    fn mixed(&mut self, alphabet: &str, len: usize) -> String {
        let mut s = self.chars(alphabet, len);
        let at = self.below(len);
        let digit = self.chars(DIGITS, 1);
        s.replace_range(at..=at, &digit);
        let at2 = (at + 1 + self.below(len - 1)) % len;
        let letters: String = alphabet.chars().filter(char::is_ascii_alphabetic).collect();
        let letter = self.chars(&letters, 1);
        s.replace_range(at2..=at2, &letter);
        s
    }

    /// A human-chosen password: starts with a letter, then letters, digits and symbols that
    /// env files, YAML and JSON carry unquoted (`@`, `/`, `;`, `&`, `,` and `!` included).
    fn password(&mut self) -> String {
        let mut s = self.chars(ALNUM, 1);
        s.push_str(&self.mixed_len(
            "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!@#^*_-+.;&,/",
            9,
            18,
        ));
        s.push_str(&self.chars(DIGITS, 1));
        s
    }

    fn chars_len(&mut self, alphabet: &str, lo: usize, hi: usize) -> String {
        let len = self.range(lo, hi);
        self.chars(alphabet, len)
    }

    fn mixed_len(&mut self, alphabet: &str, lo: usize, hi: usize) -> String {
        let len = self.range(lo, hi);
        self.mixed(alphabet, len)
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.chars(HEX, 8),
            self.chars(HEX, 4),
            self.chars(HEX, 4),
            self.chars(HEX, 4),
            self.chars(HEX, 12)
        )
    }

    fn word(&mut self) -> &'static str {
        self.pick(&[
            "shop", "orders", "billing", "web", "api", "cart", "auth-svc", "payments", "search",
        ])
    }

    /// `Name`, `NAME` or `name`.
    fn recase(&mut self, s: &str) -> String {
        match self.below(3) {
            0 => s.to_ascii_uppercase(),
            1 => s.to_ascii_lowercase(),
            _ => s.to_owned(),
        }
    }
}

fn base64(input: &[u8], alphabet: &str, pad: bool) -> String {
    let a = alphabet.as_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let index = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
            out.push(char::from(a[index]));
        }
        if pad {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

fn jwt(rng: &mut Rng) -> String {
    let header = base64(br#"{"alg":"RS256","typ":"JWT"}"#, STD_B64URL, false);
    let claims = format!(
        r#"{{"sub":"system:serviceaccount:{}:{}","iat":{}}}"#,
        rng.word(),
        rng.chars(LOWER, 6),
        rng.chars(DIGITS, 10)
    );
    let payload = base64(claims.as_bytes(), STD_B64URL, false);
    format!("{header}.{payload}.{}", rng.chars(B64URL, 86))
}

// ---------------------------------------------------------------------------------------------
// Checking.

/// A generated text and the secrets in it.
struct Case {
    text: String,
    secrets: Vec<String>,
}

fn case(text: impl Into<String>, secrets: &[&str]) -> Case {
    Case {
        text: text.into(),
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The first window of `secret` (8 characters, or all of a shorter one) that `out` still holds.
fn leaked<'a>(out: &str, secret: &'a str) -> Option<&'a str> {
    let width = secret.len().min(8);
    (0..=secret.len() - width)
        .filter_map(|i| secret.get(i..i + width))
        .find(|w| out.contains(w))
}

/// Every case's secrets are gone (no 8-character piece survives) and a marker stands in.
fn assert_redacted(category: &str, cases: impl IntoIterator<Item = Case>) {
    let redactor = Redactor::default();
    let mut failures = String::new();
    let mut count = 0;
    for case in cases {
        count += 1;
        let out = redactor.redact(&case.text);
        for secret in &case.secrets {
            if let Some(piece) = leaked(&out, secret) {
                let _ = writeln!(
                    failures,
                    "- {category}: {piece:?} of {secret:?} survived\n    in:  {:?}\n    out: {out:?}",
                    case.text
                );
            }
        }
        if !out.contains("[REDACTED") {
            let _ = writeln!(failures, "- {category}: no marker in {out:?}");
        }
    }
    assert!(count > 0, "no cases for {category}");
    assert!(failures.is_empty(), "secrets survived:\n{failures}");
}

/// Every text comes back unchanged.
fn assert_unchanged<'a>(texts: impl IntoIterator<Item = &'a str>) {
    let redactor = Redactor::default();
    let mut failures = String::new();
    for text in texts {
        let out = redactor.redact(text);
        if out != text {
            let _ = writeln!(
                failures,
                "- changed ({:?})\n    in:  {text:?}\n    out: {out:?}",
                redactor.matching_rules(text)
            );
        }
    }
    assert!(
        failures.is_empty(),
        "non-secrets were redacted:\n{failures}"
    );
}

fn generated(category: &str, make: impl Fn(&mut Rng) -> Case) -> Vec<Case> {
    (0..SEEDS)
        .map(|seed| make(&mut Rng::new(category, seed)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Regression tests, one per category that leaked.

#[test]
fn url_password_with_empty_user_is_redacted() {
    assert_eq!(
        Redactor::default().redact("connecting to redis://:s3cr3t@host:6379/0"),
        "connecting to redis://:[REDACTED]@host:6379/0"
    );
    assert_redacted(
        "url-empty-user",
        generated("url-empty-user", |rng| {
            let pw = rng.password().replace(['/', '@'], "x");
            let scheme = rng.pick(&["redis", "rediss", "amqp", "mongodb", "https"]);
            let url = format!(
                "{scheme}://:{pw}@{}.{}.svc:{}",
                rng.word(),
                rng.word(),
                rng.range(1000, 9999)
            );
            let line = match rng.below(4) {
                0 => format!("INFO dialing {url} (attempt 2)"),
                1 => format!("REDIS_URL={url}"),
                2 => format!(r#"{{"level":"warn","broker":"{url}","err":"timeout"}}"#),
                _ => format!("      url: {url}/0"),
            };
            case(line, &[&pw])
        }),
    );
}

#[test]
fn url_password_with_at_sign_is_redacted() {
    assert_eq!(
        Redactor::default().redact("dsn=postgres://app:p@ss/w0rd@db:5432/x ok"),
        "dsn=postgres://app:[REDACTED]@db:5432/x ok"
    );
    assert_redacted(
        "url-at-sign",
        generated("url-at-sign", |rng| {
            let pw = format!(
                "{}{}{}{}{}",
                rng.chars(ALNUM, 4),
                rng.pick(&["@", "/", "@@", "/@", ":"]),
                rng.chars(ALNUM, 4),
                rng.pick(&["@", "/", "#", "!"]),
                rng.mixed(ALNUM, 4)
            );
            let user = rng.recase("app");
            let scheme = rng.pick(&[
                "postgres",
                "postgresql",
                "mysql",
                "mongodb+srv",
                "amqps",
                "ftp",
            ]);
            let host = format!("{}.{}.svc.cluster.local", rng.word(), rng.word());
            let url = format!(
                "{scheme}://{user}:{pw}@{host}:{}/{}",
                rng.range(1000, 9999),
                rng.word()
            );
            let line = match rng.below(4) {
                0 => format!("2024-05-01T10:00:00Z ERROR could not connect to {url}: refused"),
                1 => format!("DATABASE_URL=\"{url}?sslmode=require\""),
                2 => format!("  - name: DSN\n    value: {url}"),
                // Go's MySQL driver: no scheme, the host in `tcp(...)`.
                _ => format!("dsn: {user}:{pw}@tcp({host}:3306)/shop?parseTime=true"),
            };
            case(line, &[&pw])
        }),
    );
}

#[test]
fn url_encoded_password_is_redacted() {
    let out = Redactor::default()
        .redact("GET /login?next=%2Fhome%3Fuser%3Dbob%26password%3Dhunter2%26x%3D1 302");
    assert!(!out.contains("hunter2"), "{out}");
    assert!(out.contains("user%3Dbob") && out.contains("x%3D1"), "{out}");
    assert_redacted(
        "url-encoded",
        generated("url-encoded", |rng| {
            let pw = rng.mixed_len(ALNUM, 10, 16);
            let a = rng.mixed(ALNUM, 6);
            let b = rng.mixed(ALNUM, 6);
            match rng.below(4) {
                0 => case(
                    format!(
                        "10.0.0.7 - - \"GET /cb?state={}&redirect=%2Flogin%3Fuser%3Dbob%26{}%3D{pw}%26lang%3Den HTTP/1.1\" 302",
                        rng.chars(HEX, 8),
                        rng.pick(&["password", "passwd", "token", "api_key", "client_secret"])
                    ),
                    &[&pw],
                ),
                1 => case(
                    format!("postgres://app:{a}%40{b}@db:5432/shop"),
                    &[&format!("{a}%40{b}")],
                ),
                2 => case(
                    format!("body=grant_type%3Dpassword%26username%3Dbob%26password%3D{pw}"),
                    &[&pw],
                ),
                _ => case(format!("q=%7B%22password%22%3A%22{pw}%22%7D"), &[&pw]),
            }
        }),
    );
}

#[test]
fn azure_account_key_is_redacted() {
    let key = format!("{}==", "Ab3+".repeat(21) + "x9");
    let conn = format!(
        "DefaultEndpointsProtocol=https;AccountName=shopdata;AccountKey={key};EndpointSuffix=core.windows.net"
    );
    let out = Redactor::default().redact(&conn);
    assert_eq!(
        out,
        "DefaultEndpointsProtocol=https;AccountName=shopdata;AccountKey=[REDACTED];EndpointSuffix=core.windows.net"
    );
    assert_redacted(
        "azure",
        generated("azure", |rng| {
            let key = format!("{}==", rng.mixed(B64, 86));
            let sas_sig = format!("{}%2B{}%3D", rng.mixed(ALNUM, 20), rng.mixed(ALNUM, 20));
            let bus_key = format!("{}=", rng.mixed(B64, 43));
            match rng.below(5) {
                0 => case(
                    format!(
                        "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName={};AccountKey={key};EndpointSuffix=core.windows.net",
                        rng.word().replace('-', "")
                    ),
                    &[&key],
                ),
                1 => case(
                    format!(
                        r#"{{"ConnectionStrings":{{"Blob":"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key}"}}}}"#
                    ),
                    &[&key],
                ),
                2 => case(
                    format!(
                        "GET https://acct.blob.core.windows.net/backups/db.tar?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2025-01-01T00:00:00Z&sig={sas_sig} 403"
                    ),
                    &[&sas_sig],
                ),
                3 => case(
                    format!(
                        "Endpoint=sb://{}.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={bus_key}",
                        rng.word()
                    ),
                    &[&bus_key],
                ),
                _ => case(
                    format!(
                        "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&ss=b&sig={sas_sig}"
                    ),
                    &[&sas_sig],
                ),
            }
        }),
    );
}

#[test]
fn cli_password_flag_is_redacted() {
    let red = Redactor::default();
    assert_eq!(
        red.redact("mysql -h db -uroot -pS3cretPw shop"),
        "mysql -h db -uroot -p[REDACTED] shop"
    );
    assert_eq!(
        red.redact("app --password hunter22 --verbose"),
        "app --password [REDACTED] --verbose"
    );
    assert_redacted(
        "cli",
        generated("cli", |rng| {
            let pw = rng.password().replace(['\'', '"'], "");
            let tok = rng.mixed(ALNUM, 32);
            match rng.below(12) {
                0 => case(
                    format!("+ mysql -h {}.db -u root -p{pw} --batch", rng.word()),
                    &[&pw],
                ),
                1 => case(
                    format!("mysqldump -uroot -p'{pw}' --single-transaction shop > dump.sql"),
                    &[&pw],
                ),
                2 => case(format!("exec: app --password={pw} --port 8080"), &[&pw]),
                3 => case(format!("exec: app --password {pw} --port 8080"), &[&pw]),
                4 => case(
                    format!("vault login --token {tok} -address=https://vault:8200"),
                    &[&tok],
                ),
                5 => case(
                    format!(
                        "az login --service-principal -u {} --client-secret {pw} --tenant t",
                        rng.uuid()
                    ),
                    &[&pw],
                ),
                6 => case(format!("cli upload --api-key {tok}"), &[&tok]),
                7 => case(format!("sshpass -p {pw} ssh deploy@10.0.0.4"), &[&pw]),
                8 => case(format!("redis-cli -h redis -a {pw} ping"), &[&pw]),
                9 => case(
                    format!("docker login -u ci -p {pw} registry.example.com"),
                    &[&pw],
                ),
                10 => case(
                    format!("curl -sf -u admin:{pw} https://grafana/api/health"),
                    &[&pw],
                ),
                _ => case(
                    format!(
                        "    args:\n    - --metrics-port=9090\n    - --token\n    - {tok}\n    command: [\"/app\", \"--db-password\", \"{pw}\"]"
                    ),
                    &[&tok, &pw],
                ),
            }
        }),
    );
}

#[test]
fn cookie_header_is_redacted() {
    assert_eq!(
        Redactor::default().redact("Set-Cookie: sid=a8F3kQ9zL2; Path=/; HttpOnly; Secure"),
        "Set-Cookie: sid=[REDACTED]; Path=/; HttpOnly; Secure"
    );
    assert_redacted(
        "cookie",
        generated("cookie", |rng| {
            let sid = rng.mixed_len(B64URL, 20, 40);
            let other = rng.mixed(ALNUM, 16);
            match rng.below(7) {
                0 => case(
                    format!("> Cookie: session={sid}; theme=dark; csrftoken={other}"),
                    &[&sid, &other],
                ),
                1 => case(
                    format!(
                        "< set-cookie: JSESSIONID={sid}; Path=/; Secure; HttpOnly; SameSite=Lax"
                    ),
                    &[&sid],
                ),
                2 => case(
                    format!(
                        r#"{{"headers":{{"Cookie":"_session_id={sid}; lang=en","Accept":"*/*"}}}}"#
                    ),
                    &[&sid],
                ),
                3 => case(
                    format!("level=debug msg=request session_id={sid} path=/cart"),
                    &[&sid],
                ),
                4 => case(format!("PHPSESSID={sid}"), &[&sid]),
                5 => case(
                    format!("curl -b 'connect.sid={sid}' https://shop/api"),
                    &[&sid],
                ),
                _ => case(
                    format!(
                        "curl --cookie \"sessionid={sid}; csrftoken={other}\" https://shop/api"
                    ),
                    &[&sid, &other],
                ),
            }
        }),
    );
}

#[test]
fn vendor_tokens_are_redacted() {
    assert_redacted(
        "vendor",
        generated("vendor", |rng| {
            let token = vendor_token(rng);
            let context = match rng.below(8) {
                0 => format!("using {token} for the upload"),
                1 => format!(r#"{{"data": "{token}", "ok": true}}"#),
                2 => format!("value: {token}"),
                3 => format!("Authorization: Bearer {token}"),
                4 => format!("args=({token})"),
                5 => format!("{token}\n"),
                6 => format!("'{token}',"),
                _ => format!("config loaded [{token}]"),
            };
            case(context, &[&token])
        }),
    );
}

/// One vendor token in its documented shape, with random parts.
fn vendor_token(rng: &mut Rng) -> String {
    match rng.below(36) {
        0 => format!("sk_live_{}", rng.mixed_len(ALNUM, 24, 99)),
        1 => format!("rk_live_{}", rng.mixed(ALNUM, 40)),
        2 => format!("sk_test_{}", rng.mixed(ALNUM, 30)),
        3 => format!("npm_{}", rng.mixed(ALNUM, 36)),
        4 => format!("pypi-AgEIcHlwaS5vcmc{}", rng.mixed(B64URL, 70)),
        5 => format!("hf_{}", rng.chars(&format!("{LOWER}{UPPER}"), 34)),
        6 => format!("SG.{}.{}", rng.mixed(B64URL, 22), rng.mixed(B64URL, 43)),
        7 => format!("key-{}", rng.mixed(HEX, 32)),
        8 => format!("{}-us{}", rng.mixed(HEX, 32), rng.range(1, 21)),
        9 => format!("GOCSPX-{}", rng.mixed(B64URL, 28)),
        10 => format!("AIza{}", rng.mixed(B64URL, 35)),
        11 => format!(
            "xoxb-{}-{}-{}",
            rng.chars(DIGITS, 12),
            rng.chars(DIGITS, 13),
            rng.mixed(ALNUM, 24)
        ),
        12 => format!(
            "xoxp-{}-{}-{}-{}",
            rng.chars(DIGITS, 11),
            rng.chars(DIGITS, 11),
            rng.chars(DIGITS, 12),
            rng.mixed(HEX, 32)
        ),
        13 => format!(
            "{}_{}",
            rng.pick(&["ghp", "gho", "ghu", "ghs", "ghr"]),
            rng.mixed(ALNUM, 36)
        ),
        14 => format!(
            "github_pat_{}_{}",
            rng.mixed(ALNUM, 22),
            rng.mixed(ALNUM, 59)
        ),
        15 => format!("glpat-{}", rng.mixed(B64URL, 20)),
        16 => format!(
            "{}{}",
            rng.pick(&["AKIA", "ASIA"]),
            rng.chars(&format!("{UPPER}{DIGITS}"), 16)
        ),
        17 => format!("sk-{}", rng.mixed(ALNUM, 48)),
        18 => format!("sk-proj-{}", rng.mixed(B64URL, 156)),
        19 => format!("sk-ant-api03-{}AA", rng.mixed(B64URL, 93)),
        20 => format!("gsk_{}", rng.mixed(ALNUM, 52)),
        21 => format!("SK{}", rng.mixed(HEX, 32)),
        22 => format!("shpat_{}", rng.mixed(HEX, 32)),
        23 => format!("dop_v1_{}", rng.mixed(HEX, 64)),
        24 => format!("ATATT3{}", rng.mixed(B64URL, 186)),
        25 => jwt(rng),
        26 => format!("whsec_{}", rng.mixed(ALNUM, 32)),
        27 => format!("shpss_{}", rng.mixed(HEX, 32)),
        28 => format!("glsa_{}_{}", rng.mixed(ALNUM, 32), rng.mixed(HEX, 8)),
        29 => format!("hvs.{}", rng.mixed(B64URL, 90)),
        30 => format!("ya29.{}", rng.mixed(B64URL, 60)),
        31 => format!("{}8Q~{}", rng.chars(ALNUM, 3), rng.mixed(ALNUM, 34)),
        32 => format!(
            "xapp-1-A{}-{}-{}",
            rng.chars(&format!("{UPPER}{DIGITS}"), 10),
            rng.chars(DIGITS, 13),
            rng.mixed(HEX, 64)
        ),
        33 => format!("doo_v1_{}", rng.mixed(HEX, 64)),
        34 => format!("sk-svcacct-{}", rng.mixed(B64URL, 120)),
        _ => format!("api_org_{}", rng.chars(&format!("{LOWER}{UPPER}"), 34)),
    }
}

#[test]
fn webhook_urls_are_redacted() {
    assert_redacted(
        "webhook",
        generated("webhook", |rng| {
            let (url, secret) = match rng.below(4) {
                0 => {
                    let s = format!(
                        "T{}/B{}/{}",
                        rng.chars(&format!("{UPPER}{DIGITS}"), 8),
                        rng.chars(&format!("{UPPER}{DIGITS}"), 10),
                        rng.mixed(ALNUM, 24)
                    );
                    (format!("https://hooks.slack.com/services/{s}"), s)
                }
                1 => {
                    let s = format!("{}/{}", rng.chars(DIGITS, 18), rng.mixed(B64URL, 68));
                    (format!("https://discord.com/api/webhooks/{s}"), s)
                }
                2 => {
                    let s = format!(
                        "{}@{}/IncomingWebhook/{}/{}",
                        rng.uuid(),
                        rng.uuid(),
                        rng.mixed(HEX, 32),
                        rng.uuid()
                    );
                    (
                        format!("https://contoso.webhook.office.com/webhookb2/{s}"),
                        s,
                    )
                }
                _ => {
                    let s = format!(
                        "{}@{}/IncomingWebhook/{}/{}",
                        rng.uuid(),
                        rng.uuid(),
                        rng.mixed(HEX, 32),
                        rng.uuid()
                    );
                    (format!("https://outlook.office.com/webhook/{s}"), s)
                }
            };
            let text = match rng.below(3) {
                0 => format!("notifier: posting alert to {url}"),
                1 => format!(r#"{{"receiver":"oncall","url":"{url}"}}"#),
                _ => format!("ALERT_URL={url}"),
            };
            case(text, &[&secret])
        }),
    );
}

#[test]
fn key_value_secrets_are_redacted() {
    const KEYS: &[&str] = &[
        "DB_PASSWORD",
        "db_passwd",
        "MYSQL_ROOT_PWD",
        "client_secret",
        "clientSecret",
        "SIGNING_KEY",
        "api_key",
        "apikey",
        "ApiKey",
        "private_key",
        "GITHUB_TOKEN",
        "STRIPE_SECRET",
        "AZURE_STORAGE_KEY",
        "passphrase",
        "AWS_SECRET_ACCESS_KEY",
        "password",
        "Password",
        "x-api-key",
        "DD_API_KEY",
        "DD_APP_KEY",
        "REDIS_PASS",
        "jwt_secret",
        "SESSION_SECRET",
        "ENCRYPTION_KEY",
        "webhookSecret",
        "TWILIO_AUTH_TOKEN",
        "JIRA_API_TOKEN",
        "accessToken",
        "refresh_token",
        "secretKey",
        "admin-password",
        "smtp.password",
        "SecretAccessKey",
        "SessionToken",
        "credentials",
        "DB_CREDS",
        "auth_token",
        "MASTER_KEY",
        "app_key",
        "DATADOG_API_KEY",
        "privateKey",
        "KEYSTORE_PASSWORD",
        "ssh-privatekey",
        "tls.key",
    ];
    assert_redacted(
        "key-value",
        generated("key-value", |rng| {
            let key = rng.pick(KEYS);
            let value = match rng.below(3) {
                0 => rng.password(),
                1 => rng.mixed(HEX, 32),
                _ => format!("{}=", rng.mixed(B64, 39)),
            };
            let v = value.as_str();
            let text = match rng.below(16) {
                0 => format!("{key}={v}"),
                1 => format!("export {key}=\"{v}\""),
                2 => format!("PATH=/usr/bin\n{key}={v}\nHOME=/root"),
                3 => format!("spec:\n  config:\n    {key}: {v}\n    logLevel: debug"),
                4 => format!("    {key}: \"{v}\""),
                5 => format!(r#"{{"user":"app","{key}":"{v}","port":5432}}"#),
                6 => format!(r#"{{"{key}": "{v}"}}"#),
                7 => format!(r#""{{\"{key}\":\"{v}\",\"debug\":false}}""#),
                8 => format!("[database]\n{key} = {v}\nhost = db"),
                9 => format!("time=2024-05-01T10:00:00Z level=info {key}={v} user=bob"),
                10 => format!("config: {{'{key}': '{v}', 'retries': 3}}"),
                11 => format!("Server=db;Database=shop;User Id=sa;{key}={v};Encrypt=true"),
                12 => format!("<settings><{key}>{v}</{key}></settings>"),
                13 => format!("  - name: {key}\n    value: {v}"),
                14 => {
                    format!(r#"[{{"name":"{key}","value":"{v}"}},{{"name":"PORT","value":"80"}}]"#)
                }
                _ => format!("GET /api/v1/things?{key}={v}&limit=10"),
            };
            case(text, &[v])
        }),
    );
}

#[test]
fn kubernetes_secret_data_is_redacted() {
    assert_redacted(
        "k8s-secret",
        generated("k8s-secret", |rng| {
            let a = base64(rng.password().as_bytes(), STD_B64, true);
            let b = base64(rng.mixed(ALNUM, 40).as_bytes(), STD_B64, true);
            let c = rng.mixed(B64, 120);
            let block = rng.password();
            let text = format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-credentials\n  namespace: shop\n  resourceVersion: \"{}\"\ntype: Opaque\ndata:\n  password: {a}\n  api-token: {b}\n  .dockerconfigjson: {c}\nstringData:\n  credentials: |\n    [default]\n    secret = {block}\n  username: app\n",
                rng.chars(DIGITS, 7)
            );
            case(text, &[&a, &b, &c, &block])
        }),
    );
    let out = Redactor::default().redact("data:\n  password: aHVudGVyMg==\n  username: YXBw\n");
    assert_eq!(out, "data:\n  password: [REDACTED]\n  username: YXBw\n");
}

#[test]
fn private_key_blocks_are_redacted() {
    assert_redacted(
        "pem",
        generated("pem", |rng| {
            let kind = rng.pick(&["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "", "DSA "]);
            let lines: Vec<String> = (0..rng.range(3, 12)).map(|_| rng.mixed(B64, 64)).collect();
            let body = lines.join("\n");
            let block = format!(
                "-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"
            );
            let text = match rng.below(4) {
                0 => format!("cat /etc/tls/key.pem\n{block}\n$ exit"),
                1 => format!(
                    r#"{{"type":"service_account","private_key":"{}","client_email":"x@y"}}"#,
                    block.replace('\n', "\\n")
                ),
                2 => format!("tls.key: |\n  {}", block.replace('\n', "\n  ")),
                // Cut off by a log tail: no END line.
                _ => format!(
                    "... {}",
                    &block[..block.find("-----END").unwrap_or(block.len())]
                ),
            };
            let secrets: Vec<&str> = lines.iter().map(String::as_str).collect();
            case(text, &secrets)
        }),
    );
}

#[test]
fn authorization_headers_are_redacted() {
    assert_redacted(
        "authorization",
        generated("authorization", |rng| {
            let basic = base64(
                format!("admin:{}", rng.password()).as_bytes(),
                STD_B64,
                true,
            );
            let bearer = rng.mixed_len(B64URL, 24, 64);
            let token = jwt(rng);
            let digest = rng.mixed(HEX, 32);
            match rng.below(6) {
                0 => case(format!("> Authorization: Basic {basic}"), &[&basic]),
                1 => case(
                    format!("Proxy-Authorization: Bearer {bearer}\r\nHost: x"),
                    &[&bearer],
                ),
                2 => case(
                    format!(r#"{{"headers":{{"authorization":"Bearer {token}"}}}}"#),
                    &[&token],
                ),
                3 => case(
                    format!("curl -H 'Authorization: token {bearer}' https://api"),
                    &[&bearer],
                ),
                4 => case(
                    format!(
                        r#"Authorization: Digest username="bob", realm="x", nonce="{}", response="{digest}""#,
                        rng.chars(HEX, 16)
                    ),
                    &[&digest],
                ),
                _ => case(
                    format!("wget --header=\"X-Api-Key: {bearer}\" https://x"),
                    &[&bearer],
                ),
            }
        }),
    );
}

#[test]
fn high_entropy_assignment_is_redacted() {
    assert_redacted(
        "entropy",
        generated("entropy", |rng| {
            let key = rng.pick(&[
                "key", "auth", "session", "hmac", "X-Auth", "sess", "sid", "oauth", "authKey",
                "sig_v2",
            ]);
            let value = if rng.below(2) == 0 {
                rng.mixed_len(B64, 20, 44)
            } else {
                rng.mixed_len(HEX, 24, 64)
            };
            let v = value.as_str();
            let text = match rng.below(4) {
                0 => format!("{key}: {v}"),
                1 => format!(r#"{{"{key}": "{v}"}}"#),
                2 => format!("level=info {key}={v} status=200"),
                _ => format!("    {key}: '{v}'"),
            };
            case(text, &[v])
        }),
    );
    // The same keys with ordinary values stay.
    assert_unchanged([
        "key: app.kubernetes.io/name",
        "auth: enabled",
        "session: 42",
        "key: 7d9f8b6c5",
        "hmac: sha256",
        "authority: login.microsoftonline.com",
    ]);
}

#[test]
fn no_stray_bracket_after_redaction() {
    let red = Redactor::default();
    let cases = [
        (
            "Authorization: Bearer abcdefgh12345678",
            "Authorization: Bearer [REDACTED]",
        ),
        (
            "password: Bearer xyz123456789",
            "password: Bearer [REDACTED]",
        ),
        ("token: token abc123defghi", "token: token [REDACTED]"),
        (
            "DB_PASSWORD=hunter2 LOG_LEVEL=debug",
            "DB_PASSWORD=[REDACTED] LOG_LEVEL=debug",
        ),
        (
            r#"{"token":"ghp_0123456789abcdefghijABCDEFGHIJ0123"}"#,
            r#"{"token":"[REDACTED]"}"#,
        ),
    ];
    for (input, want) in cases {
        let out = red.redact(input);
        assert_eq!(out, want);
        assert!(
            !out.contains("[REDACTED]]") && !out.contains("[[REDACTED"),
            "{out}"
        );
        // Redacting again changes nothing.
        assert_eq!(red.redact(&out), out);
    }
}

#[test]
fn redaction_is_idempotent_over_the_corpus() {
    let red = Redactor::default();
    for seed in 0..SEEDS {
        let mut rng = Rng::new("idempotent", seed);
        let text = format!(
            "DB_PASSWORD={}\nredis://:{}@r:6379\nAuthorization: Bearer {}\n{}",
            rng.password(),
            rng.mixed(ALNUM, 12),
            rng.mixed(B64URL, 40),
            vendor_token(&mut rng)
        );
        let once = red.redact(&text).into_owned();
        assert_eq!(red.redact(&once), once, "from {text:?}");
        assert!(!once.contains("]]"), "{once}");
    }
}

#[test]
fn arbitrary_text_never_panics() {
    // Pieces that steer the rules into their edge cases, mixed with multi-byte characters
    // (including `K` and `ſ`, which case-insensitive ASCII classes can match).
    const PIECES: &[&str] = &[
        "password",
        "token",
        "Key",
        "pwd",
        "=",
        ":",
        ": ",
        " ",
        "\"",
        "'",
        "\\",
        "\\\"",
        "%3D",
        "%26",
        "%2",
        "%",
        "é",
        "\u{212a}",
        "\u{17f}",
        "日本",
        "\n",
        "\r\n",
        "  ",
        "-",
        "--",
        "Bearer ",
        "Basic ",
        "://",
        "@",
        "/",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "|",
        ";",
        "&",
        ",",
        "{",
        "}",
        "[",
        "]",
        "<",
        ">",
        "sk-",
        "abc123XYZ",
        "Cookie: ",
        "value: ",
        "- name: ",
        "<password>",
        "</password>",
        "mysql -p",
        "eyJ",
        "[REDACTED]",
        "\\n",
    ];
    let red = Redactor::default();
    for seed in 0..3000 {
        let mut rng = Rng::new("arbitrary", seed);
        let len = rng.range(1, 40);
        let text: String = (0..len).map(|_| rng.pick(PIECES)).collect();
        let once = red.redact(&text);
        let _ = red.redact(&once);
        let _ = red.matching_rules(&text);
    }
}

// ---------------------------------------------------------------------------------------------
// Look-alikes that must stay.

#[test]
fn non_secrets_are_unchanged() {
    let mut texts: Vec<String> = vec![
        "password policy updated".into(),
        "Token expired for user bob; please log in again".into(),
        "Enter passphrase for key '/root/.ssh/id_rsa':".into(),
        "FATAL:  password authentication failed for user \"app\"".into(),
        "bearer authentication failed".into(),
        "basic auth enabled for /admin".into(),
        "      secretName: db-credentials".into(),
        "        secretKeyRef:\n          name: db-credentials\n          key: password".into(),
        "    - secretRef:\n        name: app-secrets".into(),
        "  automountServiceAccountToken: false".into(),
        "      - serviceAccountToken:\n          expirationSeconds: 3607\n          path: token".into(),
        "Warning  FailedMount  kubelet  MountVolume.SetUp failed for volume \"db-password\" : secret \"db-password\" not found".into(),
        "      DB_PASSWORD:  <set to the key 'password' in secret 'db-credentials'>  Optional: false".into(),
        "password:  16 bytes\nusername:  3 bytes".into(),
        r#"{"usage":{"prompt_tokens":1523,"completion_tokens":87,"total_tokens":1610},"max_tokens":1024}"#.into(),
        "token_type: Bearer".into(),
        "PASSWORD_MIN_LENGTH=12".into(),
        "TOKEN_TTL=3600".into(),
        "API_KEY_HEADER=X-Api-Key".into(),
        "PWD=/home/app".into(),
        "OLDPWD=/".into(),
        "tests passed=128 failed=0 skipped=3".into(),
        "signal: SIGTERM".into(),
        "tokenizer: cl100k_base".into(),
        "topologyKey: kubernetes.io/hostname".into(),
        "    key: node-role.kubernetes.io/control-plane".into(),
        "author: Jane Doe".into(),
        "sessionAffinity: None".into(),
        "GET http://localhost:8080/users/@me 200".into(),
        "image: keycloak/keycloak:22.0.1".into(),
        "image: docker.io/bitnami/sealed-secrets-controller:v0.24.0".into(),
        "image: ghcr.io/shop/vault-token-helper:1.2.3".into(),
        "DB_PASSWORD=$DB_PASSWORD".into(),
        "password: ${DB_PASSWORD}".into(),
        "password: {{ .Values.db.password }}".into(),
        r#"{"password": {"type": "string", "minLength": 12}}"#.into(),
        "auth: [REDACTED]".into(),
    ];
    for seed in 0..SEEDS {
        let mut rng = Rng::new("look-alikes", seed);
        let hash = format!(
            "{}{}",
            rng.chars("6789bcdf", 1),
            rng.chars_len("0123456789bcdf", 7, 9)
        );
        let pod = format!(
            "{}-{hash}-{}",
            rng.word(),
            rng.chars("bcdfghjklmnpqrstvwxz2456789", 5)
        );
        let digest = rng.chars(HEX, 64);
        let image = format!(
            "{}/{}:{}.{}.{}-alpine",
            rng.pick(&[
                "docker.io/library",
                "ghcr.io/shop",
                "registry.k8s.io",
                "quay.io/prometheus"
            ]),
            rng.pick(&["nginx", "redis", "postgres", "web", "node-exporter"]),
            rng.range(1, 30),
            rng.range(0, 30),
            rng.range(0, 30)
        );
        texts.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  namespace: {}\n  uid: {}\n  resourceVersion: \"{}\"\n  creationTimestamp: \"2024-0{}-1{}T0{}:1{}:2{}Z\"\n  labels:\n    pod-template-hash: {hash}\n  annotations:\n    checksum/config: {}\nspec:\n  containers:\n  - image: {image}\n    name: web\nstatus:\n  containerStatuses:\n  - containerID: containerd://{}\n    imageID: {image}@sha256:{digest}\n    restartCount: {}",
            rng.word(),
            rng.uuid(),
            rng.chars_len(DIGITS, 4, 9),
            rng.range(1, 9),
            rng.range(0, 9),
            rng.range(0, 9),
            rng.range(0, 9),
            rng.range(0, 9),
            rng.chars(HEX, 64),
            rng.chars(HEX, 64),
            rng.range(0, 40),
        ));
        texts.push(format!(
            "{pod}   1/1   Running   {}   3h12m   10.244.{}.{}   worker-{}",
            rng.range(0, 9),
            rng.range(0, 255),
            rng.range(0, 255),
            rng.range(1, 9)
        ));
        texts.push(format!(
            "commit {} trace_id={} span_id={} digest=sha256:{digest}",
            rng.chars(HEX, 40),
            rng.chars(HEX, 32),
            rng.chars(HEX, 16)
        ));
        texts.push(format!("Pulling image \"{image}\"; digest sha256:{digest}"));
    }
    assert_unchanged(texts.iter().map(String::as_str));
}

#[test]
fn a_realistic_dump_keeps_its_context() {
    let mut rng = Rng::new("dump", 1);
    let pw = rng.password();
    let key = rng.mixed(ALNUM, 40);
    let text = format!(
        "Name:         web-7d9f8b6c5-x2x9k\nNamespace:    shop\nContainers:\n  web:\n    Image:          nginx:1.25.5-alpine\n    Image ID:       docker.io/library/nginx@sha256:{}\n    Environment:\n      LOG_LEVEL:       info\n      DB_PASSWORD:     {pw}\n      STRIPE_KEY:      sk_live_{key}\n      DB_HOST:         db.shop.svc\nEvents:\n  Normal  Pulled  2m  kubelet  Successfully pulled image \"nginx:1.25.5-alpine\"",
        rng.chars(HEX, 64)
    );
    let out = Redactor::default().redact(&text);
    assert!(!out.contains(&pw) && !out.contains(&key), "{out}");
    for kept in [
        "Name:         web-7d9f8b6c5-x2x9k",
        "Image:          nginx:1.25.5-alpine",
        "LOG_LEVEL:       info",
        "DB_PASSWORD:     [REDACTED]",
        "DB_HOST:         db.shop.svc",
        "Successfully pulled image \"nginx:1.25.5-alpine\"",
    ] {
        assert!(out.contains(kept), "lost {kept:?}: {out}");
    }
}

// ---------------------------------------------------------------------------------------------
// Cost (run with `cargo test --release -p sre-core --test redact_corpus -- --ignored --nocapture`).

#[test]
#[ignore = "a timing report, meaningful only in release builds"]
fn redaction_cost_report() {
    let red = Redactor::default();
    let mut rng = Rng::new("cost", 7);
    let (mut clean, mut log) = (String::new(), String::new());
    for i in 0..260 {
        let line = format!(
            "2024-05-01T10:{:02}:{:02}.{:03}Z level=info msg=\"GET /api/orders/{}\" status=200 pod=web-7d9f8b6c5-x2x9k duration_ms={} user={}\n",
            i % 60,
            (i * 7) % 60,
            i % 1000,
            rng.chars(DIGITS, 6),
            rng.range(1, 900),
            rng.word()
        );
        clean.push_str(&line);
        log.push_str(&line);
        if i % 40 == 0 {
            let _ = writeln!(
                log,
                "DB_PASSWORD={} token={} key={}",
                rng.password(),
                rng.mixed(ALNUM, 32),
                rng.chars(LOWER, 6)
            );
        }
    }
    let tiny = "pod shop/web-1 Running, 0 restarts";
    let tiny_secret = "DB_PASSWORD=hunter2 in env";
    // Worst cases: one long minified line full of keys, a run of key words with no separator,
    // and a long base64 blob.
    let mut minified = String::new();
    for i in 0..700 {
        let _ = write!(minified, r#"{{"password":"p{i}","user":"u{i}"}},"#);
    }
    let keys = "tokenkeypass".repeat(2800);
    let blob = rng.chars(B64, 32 * 1024);
    for (name, text, runs) in [
        ("tiny clean", tiny, 100_000),
        ("tiny with a secret", tiny_secret, 100_000),
        ("32 KiB log with secrets", log.as_str(), 200),
        ("32 KiB clean log", clean.as_str(), 200),
        ("32 KiB minified JSON", minified.as_str(), 50),
        ("32 KiB of key words", keys.as_str(), 50),
        ("32 KiB base64 blob", blob.as_str(), 50),
    ] {
        let start = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..runs {
            total += red.redact(std::hint::black_box(text)).len();
        }
        let per = start.elapsed() / runs;
        println!(
            "{name:>24} ({} bytes): {per:?} per call ({total})",
            text.len()
        );
    }
}
