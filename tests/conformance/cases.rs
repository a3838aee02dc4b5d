// The suite's cases, shared by the conformance test binaries (one node, and an edge in
// front of a shard in both edge modes): each binary defines `TOPOLOGY` and `DIFFERS`
// (the cases allowed to differ there, with why) and includes this.

macro_rules! suite {
    ($( $(#[$m:meta])* $name:ident = $id:literal => $reqs:expr ;)*) => {
        fn all_cases() -> Vec<Case> {
            vec![ $( case($id, $reqs) ),* ]
        }
        $(
            $(#[$m])*
            #[tokio::test]
            async fn $name() {
                expect_pass_unless(all_cases, $id, DIFFERS).await
            }
        )*
    };
}

suite! {
    // ---------------------------------------------------------------- cc-freshness.mjs
    /// An optimal HTTP cache reuses a response with positive `Cache-Control: max-age` (optimal)
    freshness_max_age = "freshness-max-age" => vec![r().h("Cache-Control", "max-age=3600").setup().pause(), r().cached()];
    /// HTTP cache must not reuse a response with `Cache-Control: max-age` after it becomes stale (required)
    freshness_max_age_stale = "freshness-max-age-stale" => vec![become_stale(), r().not_cached()];
    /// HTTP cache must not reuse a response with `Cache-Control: max-age=0` (required)
    freshness_max_age_0 = "freshness-max-age-0" => vec![r().h("Cache-Control", "max-age=0").setup().pause(), r().not_cached()];
    /// An optimal HTTP cache reuses a response with `Cache-Control: max-age: 2147483647` (optimal)
    freshness_max_age_max_minus_1 = "freshness-max-age-max-minus-1" => vec![r().h("Cache-Control", "max-age=2147483647").setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with `Cache-Control: max-age: 2147483648` (optimal)
    freshness_max_age_max = "freshness-max-age-max" => vec![r().h("Cache-Control", "max-age=2147483648").setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with `Cache-Control: max-age: 2147483649` (optimal)
    freshness_max_age_max_plus_1 = "freshness-max-age-max-plus-1" => vec![r().h("Cache-Control", "max-age=2147483649").setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with `Cache-Control: max-age: 99999999999` (optimal)
    freshness_max_age_max_plus = "freshness-max-age-max-plus" => vec![r().h("Cache-Control", "max-age=99999999999").setup().pause(), r().cached()];
    /// HTTP cache must not reuse a response when the `Age` header is greater than its `Cache-Control: max-age` freshness lifetime (required)
    freshness_max_age_age = "freshness-max-age-age" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").h("Age", "7200").setup().pause(), r().not_cached()];
    /// An optimal HTTP cache reuses a response with positive `Cache-Control: max-age` and a past `Expires` (optimal)
    freshness_max_age_expires = "freshness-max-age-expires" => vec![r().h("Cache-Control", "max-age=3600").hd("Expires", -7200).hd("Date", 0).setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with positive `Cache-Control: max-age` and an invalid `Expires` (optimal)
    freshness_max_age_expires_invalid = "freshness-max-age-expires-invalid" => vec![r().h("Cache-Control", "max-age=3600").hu("Expires", "0").hd("Date", 0).setup().pause(), r().cached()];
    /// HTTP cache must not reuse a response with `Cache-Control: max-age=0` and a future `Expires` (required)
    freshness_max_age_0_expires = "freshness-max-age-0-expires" => vec![r().hd("Expires", 3600).h("Cache-Control", "max-age=0").hd("Date", 0).setup().pause(), r().not_cached()];
    /// An optimal HTTP cache reuses a response with positive `Cache-Control: max-age` and a CC extension present (optimal)
    freshness_max_age_extension = "freshness-max-age-extension" => vec![r().h("Cache-Control", "foobar, max-age=3600").setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with positive `Cache-Control: MaX-AgE` (optimal)
    freshness_max_age_case_insenstive = "freshness-max-age-case-insenstive" => vec![r().h("Cache-Control", "MaX-aGe=3600").setup().pause(), r().cached()];
    /// HTTP cache must not reuse a response with negative `Cache-Control: max-age` (required)
    freshness_max_age_negative = "freshness-max-age-negative" => vec![r().h("Cache-Control", "max-age=-3600").setup().pause(), r().not_cached()];
    /// An optimal shared HTTP cache reuses a response with positive `Cache-Control: s-maxage` (required: no kind in the suite)
    freshness_s_maxage_shared = "freshness-s-maxage-shared" => vec![r().h("Cache-Control", "s-maxage=3600").setup().pause(), r().cached()];
    /// Shared HTTP cache must prefer short `Cache-Control: s-maxage` over a longer `Cache-Control: max-age` (required)
    freshness_max_age_s_maxage_shared_longer = "freshness-max-age-s-maxage-shared-longer" => vec![r().h("Cache-Control", "max-age=3600, s-maxage=1").setup().pause(), r().not_cached()];
    /// Shared HTTP cache must prefer short `Cache-Control: s-maxage` over a longer `Cache-Control: max-age` (reversed) (required)
    freshness_max_age_s_maxage_shared_longer_reversed = "freshness-max-age-s-maxage-shared-longer-reversed" => vec![r().h("Cache-Control", "s-maxage=1, max-age=3600").setup().pause(), r().not_cached()];
    /// Shared HTTP cache must prefer short `Cache-Control: s-maxage` over a longer `Cache-Control: max-age` (multiple headers) (required)
    freshness_max_age_s_maxage_shared_longer_multiple = "freshness-max-age-s-maxage-shared-longer-multiple" => vec![r().h("Cache-Control", "max-age=3600").h("Cache-Control", "s-maxage=1").setup().pause(), r().not_cached()];
    /// An optimal shared HTTP cache prefers long `Cache-Control: s-maxage` over a shorter `Cache-Control: max-age` (optimal)
    freshness_max_age_s_maxage_shared_shorter = "freshness-max-age-s-maxage-shared-shorter" => vec![r().h("Cache-Control", "max-age=1, s-maxage=3600").setup().pause(), r().cached()];
    /// An optimal shared HTTP cache prefers long `Cache-Control: s-maxage` over `Cache-Control: max-age=0`, even with a past `Expires` (optimal)
    freshness_max_age_s_maxage_shared_shorter_expires = "freshness-max-age-s-maxage-shared-shorter-expires" => vec![r().hd("Expires", -10).h("Cache-Control", "max-age=0, s-maxage=3600").setup().pause(), r().cached()];

    // ---------------------------------------------------------------- cc-parse.mjs
    /// HTTP cache must not reuse a response with `max-age` in a quoted string (before the "real" `max-age`) (required)
    freshness_max_age_ignore_quoted = "freshness-max-age-ignore-quoted" => vec![r().hu("Cache-Control", "extension=\"max-age=3600\", max-age=1").setup().pause(), r().not_cached()];
    /// HTTP cache mut not reuse a response with `max-age` in a quoted string (after the "real" `max-age`) (required)
    freshness_max_age_ignore_quoted_rev = "freshness-max-age-ignore-quoted-rev" => vec![r().hu("Cache-Control", "max-age=1, extension=\"max-age=3600\"").setup().pause(), r().not_cached()];
    /// An optimal HTTP cache reuses max-age with the value `003600` (required: no kind in the suite)
    freshness_max_age_leading_zero = "freshness-max-age-leading-zero" => vec![r().hu("Cache-Control", "max-age=003600").setup().pause(), r().cached()];
    /// HTTP cache must not reuse a response with a single-quoted `Cache-Control: max-age` (required)
    freshness_max_age_single_quoted = "freshness-max-age-single-quoted" => vec![r().hu("Cache-Control", "max-age='3600'").setup().pause(), r().not_cached()];

    // ---------------------------------------------------------------- age-parse.mjs
    /// HTTP cache should ignore an `Age` header with a non-numeric value (required)
    age_parse_nonnumeric = "age-parse-nonnumeric" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "abc").setup().pause(), r().cached()];
    /// HTTP cache should ignore an `Age` header with a negative value (required)
    age_parse_negative = "age-parse-negative" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "-7200").setup().pause(), r().cached()];
    /// HTTP cache should ignore an `Age` header with a float value (required)
    age_parse_float = "age-parse-float" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "7200.0").setup().pause(), r().cached()];
    /// HTTP cache should consider a response with a `Age` value of 2147483647 to be stale (required)
    age_parse_large_minus_one = "age-parse-large-minus-one" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "2147483647").setup().pause(), r().not_cached()];
    /// HTTP cache should consider a response with a `Age` value of 2147483648 to be stale (required)
    age_parse_large = "age-parse-large" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "2147483648").setup().pause(), r().not_cached()];
    /// HTTP cache should consider a response with a `Age` value of 2147483649 to be stale (required)
    age_parse_larger = "age-parse-larger" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "2147483649").setup().pause(), r().not_cached()];
    /// HTTP cache should consider a response with a single `Age` header line `old, 0` to be stale (required)
    age_parse_suffix = "age-parse-suffix" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "7200, 0").setup().pause(), r().not_cached()];
    /// HTTP cache should consider a response with a single `Age` header line `0, old` to be fresh (required)
    age_parse_prefix = "age-parse-prefix" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "0, 7200").setup().pause(), r().cached()];
    /// HTTP cache should use the first line in a response with multiple `Age` header lines: `old`, `0` (required)
    age_parse_suffix_twoline = "age-parse-suffix-twoline" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "7200").hu("Age", "0").setup().pause(), r().not_cached()];
    /// HTTP cache should use the first line in a response with multiple `Age` header lines: `0`, `old` (required)
    age_parse_prefix_twoline = "age-parse-prefix-twoline" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "0").hu("Age", "7200").setup().pause(), r().cached()];
    /// HTTP cache should consider a response with a single line `Age: 0, 0` to be fresh (required)
    age_parse_dup_0 = "age-parse-dup-0" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "0, 0").setup().pause(), r().cached()];
    /// HTTP cache should consider a response with two `Age: 0` header lines to be fresh (required)
    age_parse_dup_0_twoline = "age-parse-dup-0-twoline" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=3600").hu("Age", "0").hu("Age", "0").setup().pause(), r().cached()];
    /// HTTP cache should consider a response with two `Age: not_old` header lines to be fresh (required)
    age_parse_dup_old = "age-parse-dup-old" => vec![r().hd("Date", 0).h("Cache-Control", "max-age=10000").hu("Age", "3600").hu("Age", "3600").setup().pause(), r().cached()];

    // ---------------------------------------------------------------- expires-freshness.mjs
    /// An optimal HTTP cache reuses a response with a future `Expires` (optimal)
    freshness_expires_future = "freshness-expires-future" => vec![r().hd("Expires", 30 * 24 * 60 * 60).hd("Date", 0).setup().pause(), r().cached()];
    /// HTTP cache must not reuse a response with a past `Expires` (required)
    freshness_expires_past = "freshness-expires-past" => vec![r().hd("Expires", -30 * 24 * 60 * 60).hd("Date", 0).setup().pause(), r().not_cached()];
    /// HTTP cache must not reuse a response with a present `Expires` (required)
    freshness_expires_present = "freshness-expires-present" => vec![r().hd("Expires", 0).hd("Date", 0).setup(), r().not_cached()];
    /// HTTP cache must not reuse a response with an `Expires` older than `Date`, both fast (required)
    freshness_expires_old_date = "freshness-expires-old-date" => vec![r().hd("Expires", 300).hd("Date", 400).setup().pause(), r().not_cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (0) (required)
    freshness_expires_invalid = "freshness-expires-invalid" => vec![r().hu("Expires", "0").hd("Date", 0).setup().pause(), r().not_cached()];
    /// An optimal HTTP cache reuses a response with `Expires`, even if `Date` is invalid (optimal)
    freshness_expires_invalid_date = "freshness-expires-invalid-date" => vec![r().hu("Date", "foo").hd("Expires", 10).setup(), r().cached()];
    /// HTTP cache must not reuse a response when the `Age` header is greater than its `Expires` minus `Date`, and `Date` is slow (required)
    freshness_expires_age_slow_date = "freshness-expires-age-slow-date" => vec![r().hd("Date", -10).hd("Expires", 10).h("Age", "25").setup(), r().not_cached()];
    /// HTTP cache must not reuse a response when the `Age` header is greater than its `Expires` minus `Date`, and `Date` is fast (required)
    freshness_expires_age_fast_date = "freshness-expires-age-fast-date" => vec![r().hd("Date", 10).hd("Expires", 20).h("Age", "15").setup(), r().not_cached()];

    // ---------------------------------------------------------------- expires-parse.mjs
    /// An optimal HTTP cache reuses a response with an `Expires` that is exactly 32 bits (optimal)
    freshness_expires_32bit = "freshness-expires-32bit" => vec![r().hu("Expires", "Tue, 19 Jan 2038 14:14:08 GMT").hd("Date", 0).setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with an `Expires` that is far in the future (optimal)
    freshness_expires_far_future = "freshness-expires-far-future" => vec![r().hu("Expires", "Sun, 21 Nov 2286 04:46:39 GMT").hd("Date", 0).setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with a future `Expires` in obsolete RFC 850 format (optimal)
    freshness_expires_rfc850 = "freshness-expires-rfc850" => vec![r().hu("Expires", "Thursday, 18-Aug-50 02:01:18 GMT").hd("Date", 0).setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with a future `Expires` in ANSI C's asctime() format (optimal)
    #[ignore = "lacquer fails (optimal): the suite date `Thu Aug  8 02:01:18 2050` has a wrong weekday and httpdate rejects it; policy.rs parse_http_date"]
    freshness_expires_ansi_c = "freshness-expires-ansi-c" => vec![r().hu("Expires", "Thu Aug  8 02:01:18 2050").hd("Date", 0).setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with a future `Expires` using wrong case (weekday) (optimal)
    freshness_expires_wrong_case_weekday = "freshness-expires-wrong-case-weekday" => vec![r().hu("Expires", "THU, 18 Aug 2050 02:01:18 GMT").hd("Date", 0).setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with a future `Expires` using wrong case (month) (optimal)
    freshness_expires_wrong_case_month = "freshness-expires-wrong-case-month" => vec![r().hu("Expires", "Thu, 18 AUG 2050 02:01:18 GMT").hd("Date", 0).setup().pause(), r().cached()];
    /// An optimal HTTP cache reuses a response with a future `Expires` using wrong case (tz) (optimal)
    freshness_expires_wrong_case_tz = "freshness-expires-wrong-case-tz" => vec![r().hu("Expires", "Thu, 18 Aug 2050 02:01:18 gMT").hd("Date", 0).setup().pause(), r().cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (UTC) (required)
    freshness_expires_invalid_utc = "freshness-expires-invalid-utc" => vec![r().hu("Expires", "Thu, 18 Aug 2050 02:01:18 UTC").hd("Date", 0).setup().pause(), r().not_cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (other tz) (required)
    freshness_expires_invalid_aest = "freshness-expires-invalid-aest" => vec![r().hu("Expires", "Thu, 18 Aug 2050 02:01:18 AEST").hd("Date", 0).setup().pause(), r().not_cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (two-digit year) (required)
    freshness_expires_invalid_2_digit_year = "freshness-expires-invalid-2-digit-year" => vec![r().hu("Expires", "Thu, 18 Aug 50 02:01:18 GMT").hd("Date", 0).setup().pause(), r().not_cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (missing comma) (required)
    freshness_expires_invalid_no_comma = "freshness-expires-invalid-no-comma" => vec![r().hu("Expires", "Thu 18 Aug 2050 02:01:18 GMT").hd("Date", 0).setup().pause(), r().not_cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (multiple spaces) (required)
    freshness_expires_invalid_multiple_spaces = "freshness-expires-invalid-multiple-spaces" => vec![r().hu("Expires", "Thu, 18  Aug  2050 02:01:18 GMT").hd("Date", 0).setup(), r().not_cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (date dashes) (required)
    freshness_expires_invalid_date_dashes = "freshness-expires-invalid-date-dashes" => vec![r().hu("Expires", "Thu, 18-Aug-2050 02:01:18 GMT").hd("Date", 0).setup(), r().not_cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (time periods) (required)
    freshness_expires_invalid_time_periods = "freshness-expires-invalid-time-periods" => vec![r().hu("Expires", "Thu, 18 Aug 2050 02.01.18 GMT").hd("Date", 0).setup(), r().not_cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (1-digit hour) (required)
    freshness_expires_invalid_1_digit_hour = "freshness-expires-invalid-1-digit-hour" => vec![r().hu("Expires", "Thu, 18 Aug 2050 2:01:18 GMT").hd("Date", 0).setup(), r().not_cached()];
    /// HTTP cache must not reuse a response with an invalid `Expires` (multiple lines) (required)
    freshness_expires_invalid_multiple_lines = "freshness-expires-invalid-multiple-lines" => vec![r().hu("Expires", "Thu, 18 Aug 2050 2:01:18 GMT").hu("Expires", "Thu, 18 Aug 2050 2:01:19 GMT").hd("Date", 0).setup(), r().not_cached()];

    // ---------------------------------------------------------------- cc-response.mjs
    /// Shared HTTP cache must not store a response with `Cache-Control: private` (required)
    cc_resp_private_shared = "cc-resp-private-shared" => vec![r().h("Cache-Control", "private, max-age=3600").setup(), r().not_cached()];
    /// HTTP cache must not store a response with `Cache-Control: no-store` (required)
    cc_resp_no_store = "cc-resp-no-store" => vec![r().h("Cache-Control", "no-store").setup(), r().not_cached()];
    /// HTTP cache must not store a response with `Cache-Control: nO-StOrE` (required)
    cc_resp_no_store_case_insensitive = "cc-resp-no-store-case-insensitive" => vec![r().h("Cache-Control", "No-StOrE").setup(), r().not_cached()];
    /// HTTP cache must not store a response with `Cache-Control: no-store`, even with `max-age` and `Expires` (required)
    cc_resp_no_store_fresh = "cc-resp-no-store-fresh" => vec![r().h("Cache-Control", "max-age=10000, no-store").hd("Expires", 10000).hd("Date", 0).setup(), r().not_cached()];
    /// Does HTTP cache use older stored response when newer one came with `Cache-Control: no-store`? (required: no kind in the suite)
    cc_resp_no_store_old_new = "cc-resp-no-store-old-new" => vec![
        r().h("Cache-Control", "max-age=10000").hd("Expires", 10000).hd("Date", 0).h("A", "1").setup().pause(),
        r().h("Cache-Control", "no-store").hd("Date", 0).h("A", "2").setup().pause(),
        r().cached().expect_h("a", "1")];
    /// Does HTTP cache use older stored response when newer one came with `Cache-Control: no-store, max-age=0`? (required: no kind in the suite)
    cc_resp_no_store_old_max_age = "cc-resp-no-store-old-max-age" => vec![
        r().h("Cache-Control", "max-age=10000").hd("Expires", 10000).hd("Date", 0).h("A", "1").setup().pause(),
        r().h("Cache-Control", "no-store, max-age=0").hd("Date", 0).h("A", "2").setup().pause(),
        r().cached().expect_h("a", "1")];
    /// HTTP cache must not use a cached response with `Cache-Control: no-cache`, even with `max-age` and `Expires` (required)
    cc_resp_no_cache = "cc-resp-no-cache" => vec![r().h("Cache-Control", "max-age=10000, no-cache").hd("Expires", 10000).hd("Date", 0).setup(), r().not_cached()];
    /// HTTP cache must not use a cached response with `Cache-Control: No-CaChE`, even with `max-age` and `Expires` (required)
    cc_resp_no_cache_case_insensitive = "cc-resp-no-cache-case-insensitive" => vec![r().h("Cache-Control", "max-age=10000, No-CaChE").hd("Expires", 10000).hd("Date", 0).setup(), r().not_cached()];
    /// An optimal HTTP cache stores a response with `Cache-Control: no-cache`, but revalidates it upon use (optimal)
    cc_resp_no_cache_revalidate = "cc-resp-no-cache-revalidate" => vec![r().h("Cache-Control", "no-cache").h("ETag", "\"abcd\"").setup(), r().etag_validated()];
    /// An optimal HTTP cache stores a response with `Cache-Control: no-cache`, but revalidates it upon use, even with `max-age` and `Expires` (optimal)
    cc_resp_no_cache_revalidate_fresh = "cc-resp-no-cache-revalidate-fresh" => vec![r().h("Cache-Control", "max-age=10000, no-cache").hd("Expires", 10000).hd("Date", 0).h("ETag", "\"abcd\"").setup(), r().etag_validated()];
    /// An optimal HTTP cache reuses a response with positive `Cache-Control: max-age, must-revalidate` (optimal)
    cc_resp_must_revalidate_fresh = "cc-resp-must-revalidate-fresh" => vec![r().h("Cache-Control", "max-age=10000, must-revalidate").h("ETag", "\"abcd\"").setup(), r().cached()];
    /// HTTP cache must revalidate a stale response with positive `Cache-Control: max-age, must-revalidate` (required)
    cc_resp_must_revalidate_stale = "cc-resp-must-revalidate-stale" => vec![
        r().h("Cache-Control", "max-age=2, must-revalidate").h("ETag", "\"abcd\"").setup(),
        r().cached().setup().pause().h("Cache-Control", "max-age=2, must-revalidate").h("ETag", "\"abcd\""),
        r().etag_validated()];

    // ---------------------------------------------------------------- status.mjs / heuristic-freshness.mjs
    /// HTTP cache must not reuse a stale `200` response with explicit freshness (required)
    status_200_stale = "status-200-stale" => { let b = http_content("200"); vec![stale().status(200).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `200` response with explict freshness (optimal)
    status_200_fresh = "status-200-fresh" => { let b = http_content("200"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(200).body(&b), r().cached().status(200).body(&b)] };
    /// HTTP cache must not reuse a stale `203` response with explicit freshness (required)
    status_203_stale = "status-203-stale" => { let b = http_content("203"); vec![stale().status(203).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `203` response with explict freshness (optimal)
    status_203_fresh = "status-203-fresh" => { let b = http_content("203"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(203).body(&b), r().cached().status(203).body(&b)] };
    /// HTTP cache must not reuse a stale `204` response with explicit freshness (required)
    status_204_stale = "status-204-stale" => vec![stale().status(204).setup(), r().not_cached()];
    /// An optimal HTTP cache reuses a fresh `204` response with explict freshness (optimal)
    status_204_fresh = "status-204-fresh" => vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(204), r().cached().status(204)];
    /// HTTP cache must not reuse a stale `299` response with explicit freshness (required)
    status_299_stale = "status-299-stale" => { let b = http_content("299"); vec![stale().status(299).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `299` response with explict freshness (optimal)
    status_299_fresh = "status-299-fresh" => { let b = http_content("299"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(299).body(&b), r().cached().status(299).body(&b)] };
    /// HTTP cache must not reuse a stale `301` response with explicit freshness (required)
    status_301_stale = "status-301-stale" => { let b = http_content("301"); vec![stale().status(301).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `301` response with explict freshness (optimal)
    status_301_fresh = "status-301-fresh" => { let b = http_content("301"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(301).body(&b), r().cached().status(301).body(&b)] };
    /// HTTP cache must not reuse a stale `302` response with explicit freshness (required)
    status_302_stale = "status-302-stale" => { let b = http_content("302"); vec![stale().status(302).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `302` response with explict freshness (optimal)
    status_302_fresh = "status-302-fresh" => { let b = http_content("302"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(302).body(&b), r().cached().status(302).body(&b)] };
    /// HTTP cache must not reuse a stale `303` response with explicit freshness (required)
    status_303_stale = "status-303-stale" => { let b = http_content("303"); vec![stale().status(303).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `303` response with explict freshness (optimal)
    status_303_fresh = "status-303-fresh" => { let b = http_content("303"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(303).body(&b), r().cached().status(303).body(&b)] };
    /// HTTP cache must not reuse a stale `307` response with explicit freshness (required)
    status_307_stale = "status-307-stale" => { let b = http_content("307"); vec![stale().status(307).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `307` response with explict freshness (optimal)
    status_307_fresh = "status-307-fresh" => { let b = http_content("307"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(307).body(&b), r().cached().status(307).body(&b)] };
    /// HTTP cache must not reuse a stale `308` response with explicit freshness (required)
    status_308_stale = "status-308-stale" => { let b = http_content("308"); vec![stale().status(308).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `308` response with explict freshness (optimal)
    status_308_fresh = "status-308-fresh" => { let b = http_content("308"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(308).body(&b), r().cached().status(308).body(&b)] };
    /// HTTP cache must not reuse a stale `400` response with explicit freshness (required)
    status_400_stale = "status-400-stale" => { let b = http_content("400"); vec![stale().status(400).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `400` response with explict freshness (optimal)
    status_400_fresh = "status-400-fresh" => { let b = http_content("400"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(400).body(&b), r().cached().status(400).body(&b)] };
    /// HTTP cache must not reuse a stale `404` response with explicit freshness (required)
    status_404_stale = "status-404-stale" => { let b = http_content("404"); vec![stale().status(404).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `404` response with explict freshness (optimal)
    status_404_fresh = "status-404-fresh" => { let b = http_content("404"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(404).body(&b), r().cached().status(404).body(&b)] };
    /// HTTP cache must not reuse a stale `410` response with explicit freshness (required)
    status_410_stale = "status-410-stale" => { let b = http_content("410"); vec![stale().status(410).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `410` response with explict freshness (optimal)
    status_410_fresh = "status-410-fresh" => { let b = http_content("410"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(410).body(&b), r().cached().status(410).body(&b)] };
    /// HTTP cache must not reuse a stale `499` response with explicit freshness (required)
    status_499_stale = "status-499-stale" => { let b = http_content("499"); vec![stale().status(499).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `499` response with explict freshness (optimal)
    status_499_fresh = "status-499-fresh" => { let b = http_content("499"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(499).body(&b), r().cached().status(499).body(&b)] };
    /// HTTP cache must not reuse a stale `500` response with explicit freshness (required)
    status_500_stale = "status-500-stale" => { let b = http_content("500"); vec![stale().status(500).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `500` response with explict freshness (optimal)
    status_500_fresh = "status-500-fresh" => { let b = http_content("500"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(500).body(&b), r().cached().status(500).body(&b)] };
    /// HTTP cache must not reuse a stale `502` response with explicit freshness (required)
    status_502_stale = "status-502-stale" => { let b = http_content("502"); vec![stale().status(502).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `502` response with explict freshness (optimal)
    status_502_fresh = "status-502-fresh" => { let b = http_content("502"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(502).body(&b), r().cached().status(502).body(&b)] };
    /// HTTP cache must not reuse a stale `503` response with explicit freshness (required)
    status_503_stale = "status-503-stale" => { let b = http_content("503"); vec![stale().status(503).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `503` response with explict freshness (optimal)
    status_503_fresh = "status-503-fresh" => { let b = http_content("503"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(503).body(&b), r().cached().status(503).body(&b)] };
    /// HTTP cache must not reuse a stale `504` response with explicit freshness (required)
    status_504_stale = "status-504-stale" => { let b = http_content("504"); vec![stale().status(504).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `504` response with explict freshness (optimal)
    status_504_fresh = "status-504-fresh" => { let b = http_content("504"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(504).body(&b), r().cached().status(504).body(&b)] };
    /// HTTP cache must not reuse a stale `599` response with explicit freshness (required)
    status_599_stale = "status-599-stale" => { let b = http_content("599"); vec![stale().status(599).body(&b).setup(), r().not_cached().body(&b)] };
    /// An optimal HTTP cache reuses a fresh `599` response with explict freshness (optimal)
    status_599_fresh = "status-599-fresh" => { let b = http_content("599"); vec![r().hd("Expires", 100000).hd("Last-Modified", 0).hd("Date", 0).status(599).body(&b), r().cached().status(599).body(&b)] };
    /// An optimal HTTP cache should reuse a `200 OK` response with `Last-Modified` based upon heuristic freshness (optimal)
    heuristic_200_cached = "heuristic-200-cached" => { let b = http_content("200"); vec![r().status(200).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().cached().status(200).body(&b)] };
    /// HTTP cache must not reuse a `201 Created` response with `Last-Modified` based upon heuristic freshness (required)
    heuristic_201_not_cached = "heuristic-201-not_cached" => { let b = http_content("201"); vec![r().status(201).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().not_cached().status(201).body(&b)] };
    /// HTTP cache must not reuse a `202 Accepted` response with `Last-Modified` based upon heuristic freshness (required)
    heuristic_202_not_cached = "heuristic-202-not_cached" => { let b = http_content("202"); vec![r().status(202).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().not_cached().status(202).body(&b)] };
    /// An optimal HTTP cache should reuse a `203 Non-Authoritative Information` response with `Last-Modified` based upon heuristic freshness (optimal)
    heuristic_203_cached = "heuristic-203-cached" => { let b = http_content("203"); vec![r().status(203).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().cached().status(203).body(&b)] };
    /// An optimal HTTP cache should reuse a `204 No Content` response with `Last-Modified` based upon heuristic freshness (optimal)
    heuristic_204_cached = "heuristic-204-cached" => vec![r().status(204).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).setup(), r().cached().status(204)];
    /// HTTP cache must not reuse a `403 Forbidden` response with `Last-Modified` based upon heuristic freshness (required)
    heuristic_403_not_cached = "heuristic-403-not_cached" => { let b = http_content("403"); vec![r().status(403).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().not_cached().status(403).body(&b)] };
    /// An optimal HTTP cache should reuse a `404 Not Found` response with `Last-Modified` based upon heuristic freshness (optimal)
    heuristic_404_cached = "heuristic-404-cached" => { let b = http_content("404"); vec![r().status(404).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().cached().status(404).body(&b)] };
    /// An optimal HTTP cache should reuse a `405 Method Not Allowed` response with `Last-Modified` based upon heuristic freshness (optimal)
    heuristic_405_cached = "heuristic-405-cached" => { let b = http_content("405"); vec![r().status(405).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().cached().status(405).body(&b)] };
    /// An optimal HTTP cache should reuse a `410 Gone` response with `Last-Modified` based upon heuristic freshness (optimal)
    heuristic_410_cached = "heuristic-410-cached" => { let b = http_content("410"); vec![r().status(410).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().cached().status(410).body(&b)] };
    /// An optimal HTTP cache should reuse a `414 URI Too Long` response with `Last-Modified` based upon heuristic freshness (optimal)
    heuristic_414_cached = "heuristic-414-cached" => { let b = http_content("414"); vec![r().status(414).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().cached().status(414).body(&b)] };
    /// An optimal HTTP cache should reuse a `501 Not Implemented` response with `Last-Modified` based upon heuristic freshness (optimal)
    heuristic_501_cached = "heuristic-501-cached" => { let b = http_content("501"); vec![r().status(501).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().cached().status(501).body(&b)] };
    /// HTTP cache must not reuse a `502 Bad Gateway` response with `Last-Modified` based upon heuristic freshness (required)
    heuristic_502_not_cached = "heuristic-502-not_cached" => { let b = http_content("502"); vec![r().status(502).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().not_cached().status(502).body(&b)] };
    /// HTTP cache must not reuse a `503 Service Unavailable` response with `Last-Modified` based upon heuristic freshness (required)
    heuristic_503_not_cached = "heuristic-503-not_cached" => { let b = http_content("503"); vec![r().status(503).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().not_cached().status(503).body(&b)] };
    /// HTTP cache must not reuse a `504 Gateway Timeout` response with `Last-Modified` based upon heuristic freshness (required)
    heuristic_504_not_cached = "heuristic-504-not_cached" => { let b = http_content("504"); vec![r().status(504).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().not_cached().status(504).body(&b)] };
    /// HTTP cache must not reuse a `599 Unknown` response with `Last-Modified` based upon heuristic freshness when `Cache-Control: public` is not present (required)
    heuristic_599_not_cached = "heuristic-599-not_cached" => { let b = http_content("599"); vec![r().status(599).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).body(&b).setup(), r().not_cached().status(599).body(&b)] };
    /// An optimal HTTP cache should reuse a `599 Unknown` response with `Last-Modified` based upon heuristic freshness when `Cache-Control: public` is present (optimal)
    heuristic_599_cached = "heuristic-599-cached" => { let b = http_content("599"); vec![r().status(599).hd("Last-Modified", -24 * 60 * 60).hd("Date", 0).h("Cache-Control", "public").body(&b).setup(), r().cached().status(599).body(&b)] };

    /// HTTP cache must not reuse a fresh response with an unrecognised status code and `Cache-Control: no-store, must-understand` (required)
    status_599_must_understand = "status-599-must-understand" => vec![r().status(599).h("Cache-Control", "max-age=3600, no-store, must-understand").setup(), r().not_cached()];
    /// An optimal HTTP cache reuses a fresh response with a recognised status code and `Cache-Control: no-store, must-understand` (optimal)
    status_200_must_understand = "status-200-must-understand" => vec![r().status(200).h("Cache-Control", "max-age=3600, no-store, must-understand").setup(), r().cached()];

    // ---------------------------------------------------------------- vary.mjs / vary-parse.mjs
    /// An optimal HTTP cache reuses a `Vary` response when the request matches (optimal)
    vary_match = "vary-match" => vec![vary_setup(), r().q("Foo", "1").cached()];
    /// HTTP cache must not reuse `Vary` response when request doesn't match (required)
    vary_no_match = "vary-no-match" => vec![vary_setup(), r().q("Foo", "2").not_cached()];
    /// HTTP cache must not reuse `Vary` response when stored request omits variant request header (required)
    vary_omit_stored = "vary-omit-stored" => vec![r().h("Cache-Control", "max-age=5000").hd("Last-Modified", -3000).hd("Date", 0).h("Vary", "Foo").setup(), r().q("Foo", "1").not_cached()];
    /// HTTP cache must not reuse `Vary` response when presented request omits variant request header (required)
    vary_omit = "vary-omit" => vec![vary_setup(), r().not_cached()];
    /// An optimal HTTP cache can store two different variants (optimal)
    vary_invalidate = "vary-invalidate" => {
        let (b1, b2) = (http_content("foo_1"), http_content("foo_2"));
        vec![vary_setup().body(&b1),
             r().q("Foo", "2").h("Cache-Control", "max-age=5000").hd("Last-Modified", -3000).hd("Date", 0).h("Vary", "Foo").not_cached().body(&b2).setup(),
             r().q("Foo", "1").body(&b1).cached()]
    };
    /// An optimal HTTP cache should not include headers not listed in `Vary` in the cache key (optimal)
    vary_cache_key = "vary-cache-key" => vec![vary_setup().q("Other", "2"), r().q("Foo", "1").q("Other", "3").cached()];
    /// An optimal HTTP cache reuses a two-way `Vary` response when request matches (optimal)
    vary_2_match = "vary-2-match" => vec![vary2_setup(), r().q("Foo", "1").q("Bar", "abc").cached()];
    /// HTTP cache must not reuse two-way `Vary` response when request doesn't match (required)
    vary_2_no_match = "vary-2-no-match" => vec![vary2_setup(), r().q("Foo", "2").q("Bar", "abc").not_cached()];
    /// HTTP cache must not reuse two-way `Vary` response when request omits variant request header (required)
    vary_2_match_omit = "vary-2-match-omit" => vec![vary2_setup(), r().not_cached()];
    /// An optimal HTTP cache reuses a three-way `Vary` response when request matches (optimal)
    vary_3_match = "vary-3-match" => vec![vary3_setup(), r().q("Foo", "1").q("Bar", "abc").q("Baz", "789").cached()];
    /// HTTP cache must not reuse three-way `Vary` response when request doesn't match (required)
    vary_3_no_match = "vary-3-no-match" => vec![vary3_setup(), r().q("Foo", "2").q("Bar", "abc").q("Baz", "789").not_cached()];
    /// HTTP cache must not reuse three-way `Vary` response when request doesn't match, regardless of header order (required)
    vary_3_order = "vary-3-order" => vec![vary3_setup(), r().q("Foo", "1").q("Baz", "789").q("Bar", "abcde").not_cached()];
    /// An optimal HTTP cache reuses a three-way `Vary` response when both request and the original request omited a variant header (optimal)
    vary_3_omit = "vary-3-omit" => vec![r().q("Foo", "1").q("Baz", "789").h("Cache-Control", "max-age=5000").hd("Date", 0).hd("Last-Modified", -3000).hu("Vary", "Foo, Bar, Baz").setup(), r().q("Foo", "1").q("Baz", "789").cached()];
    /// HTTP cache must not reuse `Vary` response with a value of `*` (required)
    vary_star = "vary-star" => vec![r().q("Foo", "1").q("Baz", "789").h("Cache-Control", "max-age=5000").hd("Last-Modified", -3000).hd("Date", 0).h("Vary", "*").setup(), r().q("Foo", "1").q("Baz", "789").not_cached()];
    /// An optimal HTTP cache normalises unknown selecting headers by combining fields (optimal)
    vary_normalise_combine = "vary-normalise-combine" => vec![r().q("Foo", "1, 2").h("Cache-Control", "max-age=5000").hd("Last-Modified", -3000).hd("Date", 0).h("Vary", "Foo").setup(), r().q("Foo", "1").q("Foo", "2").cached()];
    /// An optimal HTTP cache normalises unknown selecting headers by removing whitespace (optimal)
    vary_normalise_space = "vary-normalise-space" => vec![r().q("Foo", "1,2").h("Cache-Control", "max-age=5000").hd("Last-Modified", -3000).hd("Date", 0).h("Vary", "Foo").setup(), r().q("Foo", " 1, 2 ").cached()];
    /// HTTP cache must not reuse `Vary` response with a value of `*` (vary-parse) (required)
    vary_syntax_star = "vary-syntax-star" => vec![vary_parse_setup().hu("Vary", "*"), vary_parse_req()];
    /// HTTP cache must not reuse `Vary` response with a value of `*, *` (required)
    vary_syntax_star_star = "vary-syntax-star-star" => vec![vary_parse_setup().hu("Vary", "*, *"), vary_parse_req()];
    /// HTTP cache must not reuse `Vary` response with a value of `*, *` on different lines (required)
    vary_syntax_star_star_lines = "vary-syntax-star-star-lines" => vec![vary_parse_setup().hu("Vary", "*").hu("Vary", "*"), vary_parse_req()];
    /// HTTP cache must not reuse `Vary` response with a value of `, *` (required)
    vary_syntax_empty_star = "vary-syntax-empty-star" => vec![vary_parse_setup().hu("Vary", ", *"), vary_parse_req()];
    /// HTTP cache must not reuse `Vary` response with a value of `, *` on different lines (required)
    vary_syntax_empty_star_lines = "vary-syntax-empty-star-lines" => vec![vary_parse_setup().hu("Vary", "").hu("Vary", "*"), vary_parse_req()];
    /// HTTP cache must not reuse `Vary` response with a value of `*, Foo` (required)
    vary_syntax_star_foo = "vary-syntax-star-foo" => vec![vary_parse_setup().hu("Vary", "*, Foo"), vary_parse_req()];
    /// HTTP cache must not reuse `Vary` response with a value of `Foo, *` (required)
    vary_syntax_foo_star = "vary-syntax-foo-star" => vec![vary_parse_setup().hu("Vary", "Foo, *"), vary_parse_req()];

    // ---------------------------------------------------------------- conditional-etag.mjs / conditional-lm.mjs
    /// An optimal HTTP cache responds to `If-None-Match` with a `304` when holding a fresh response with a matching strong `ETag` (optimal)
    conditional_etag_strong_respond = "conditional-etag-strong-respond" => vec![fresh().h("ETag", "\"abcdef\""), r().q("If-None-Match", "\"abcdef\"").cached().expect_status(304)];
    /// HTTP cache must include `ETag` in a `304 Not Modified` (required)
    conditional_304_etag = "conditional-304-etag" => vec![fresh().h("ETag", "\"abcdef\""), r().q("If-None-Match", "\"abcdef\"").cached().expect_status(304).expect_h("ETag", "\"abcdef\"")];
    /// HTTP cache must give precedence to `If-None-Match` over `If-Modified-Since` (required)
    conditional_etag_precedence = "conditional-etag-precedence" => vec![fresh().hd("Last-Modified", -5000).h("ETag", "\"abcdef\""), r().q("If-None-Match", "\"abcdef\"").ims(-1).cached().expect_status(304)];
    /// An optimal HTTP cache responds to `If-None-Match` with a `304` when holding a fresh response with a matching weak `ETag` (optimal)
    conditional_etag_weak_respond = "conditional-etag-weak-respond" => vec![fresh().h("ETag", "W/\"abcdef\""), r().q("If-None-Match", "W/\"abcdef\"").cached().expect_status(304)];
    /// An optimal HTTP cache responds to `If-None-Match` with a `304` when it contains multiple entity-tags (middle one) (optimal)
    conditional_etag_strong_respond_multiple_second = "conditional-etag-strong-respond-multiple-second" => vec![fresh().h("ETag", "\"abcdef\""), r().q("If-None-Match", "\"1234\", \"abcdef\", \"5678\"").cached().expect_status(304)];
    /// HTTP cache must include stored response headers identified by `Vary` in a conditional request it generates (required)
    conditional_etag_vary_headers = "conditional-etag-vary-headers" => vec![
        r().q("Abc", "123").hd("Expires", 1).h("ETag", "\"abcdef\"").hd("Date", 0).h("Vary", "Abc").setup().pause(),
        r().q("Abc", "123").etag_validated().expect_req_h("Abc", "123").setup_tests(&["expected_type"])];
    /// An optimal HTTP cache generates a `If-None-Match` request when holding a stale response with a matching strong `ETag` (optimal)
    conditional_etag_strong_generate = "conditional-etag-strong-generate" => vec![become_stale().h("ETag", "\"abcdef\""), r().expect_req_h("If-None-Match", "\"abcdef\"").etag_validated()];
    /// An optimal HTTP cache generates a `If-None-Match` request when holding a stale response with a matching weak `ETag` (optimal)
    conditional_etag_weak_generate_weak = "conditional-etag-weak-generate-weak" => vec![become_stale().h("ETag", "W/\"abcdef\""), r().expect_req_h("If-None-Match", "W/\"abcdef\"").etag_validated()];
    /// An optimal HTTP cache responds to `If-Modified-Since` with a `304` when holding a fresh response with a matching `Last-Modified` (optimal)
    conditional_lm_fresh = "conditional-lm-fresh" => vec![r().h("Cache-Control", "max-age=100000").hd("Last-Modified", -3000).hd("Date", 0).setup().pause(), r().ims(-3000).cached().expect_status(304)];
    /// An optimal HTTP cache responds to `If-Modified-Since` with a `304` when holding a stale response with a matching `Last-Modified`, after validation (optimal)
    conditional_lm_stale = "conditional-lm-stale" => vec![r().h("Cache-Control", "max-age=2").hd("Last-Modified", -3000).hd("Date", 0).setup().pause(), r().ims(-3000).lm_validated().expect_status(304)];

    // ---------------------------------------------------------------- headers.mjs
    /// `Connection` header must inhibit a HTTP cache from storing listed headers (required)
    headers_omit_headers_listed_in_connection = "headers-omit-headers-listed-in-Connection" => vec![
        fresh().hu("Connection", "a, b").hu("a", "1").hu("b", "2").hu("c", "3"),
        r().cached().expect_h("c", "3").expect_missing("a").expect_missing("b").setup_tests(&["expected_type", "expected_response_headers"])];
    /// HTTP cache must store `Test-Header` header field (required)
    headers_store_test_header = "headers-store-Test-Header" => { let v = http_content("Test-Header-store-value"); vec![r().hd("Date", 0).hx("Test-Header", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Test-Header", &v)] };
    /// HTTP cache must store `X-Test-Header` header field (required)
    headers_store_x_test_header = "headers-store-X-Test-Header" => { let v = http_content("X-Test-Header-store-value"); vec![r().hd("Date", 0).hx("X-Test-Header", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("X-Test-Header", &v)] };
    /// HTTP cache must store `Content-Foo` header field (required)
    headers_store_content_foo = "headers-store-Content-Foo" => { let v = http_content("Content-Foo-store-value"); vec![r().hd("Date", 0).hx("Content-Foo", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Content-Foo", &v)] };
    /// HTTP cache must store `X-Content-Foo` header field (required)
    headers_store_x_content_foo = "headers-store-X-Content-Foo" => { let v = http_content("X-Content-Foo-store-value"); vec![r().hd("Date", 0).hx("X-Content-Foo", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("X-Content-Foo", &v)] };
    /// HTTP cache must store `Cache-Control` header field (required)
    headers_store_cache_control = "headers-store-Cache-Control" => { let v = "max-age=3600".to_string(); vec![r().hd("Date", 0).hx("Cache-Control", &v, true).setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Cache-Control", &v)] };
    /// HTTP cache must not store `Connection` header field (required)
    headers_store_connection = "headers-store-Connection" => { let v = http_content("Connection-store-value"); vec![r().hd("Date", 0).hx("Connection", &v, false).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_missing_pair("Connection", &v)] };
    /// HTTP cache must store `Content-Encoding` header field (required)
    headers_store_content_encoding = "headers-store-Content-Encoding" => { let v = http_content("Content-Encoding-store-value"); vec![r().hd("Date", 0).hx("Content-Encoding", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Content-Encoding", &v)] };
    /// HTTP cache must store `Content-Length` header field (required)
    headers_store_content_length = "headers-store-Content-Length" => { let v = "10".to_string(); vec![r().hd("Date", 0).hx("Content-Length", &v, true).h("Cache-Control", "max-age=3600").setup().pause().no_body_check(), r().cached().setup_tests(&["expected_type"]).expect_h("Content-Length", &v).no_body_check()] };
    /// HTTP cache must store `Content-Location` header field (required)
    headers_store_content_location = "headers-store-Content-Location" => { let v = "/bar".to_string(); vec![r().hd("Date", 0).hx("Content-Location", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Content-Location", &v)] };
    /// HTTP cache must store `Content-MD5` header field (required)
    headers_store_content_md5 = "headers-store-Content-MD5" => { let v = "N7UdGUp1E+RbVvZSTy1R8g==".to_string(); vec![r().hd("Date", 0).hx("Content-MD5", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Content-MD5", &v)] };
    /// HTTP cache must store `Content-Range` header field (required)
    headers_store_content_range = "headers-store-Content-Range" => { let v = http_content("Content-Range-store-value"); vec![r().hd("Date", 0).hx("Content-Range", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Content-Range", &v)] };
    /// HTTP cache must store `Content-Security-Policy` header field (required)
    headers_store_content_security_policy = "headers-store-Content-Security-Policy" => { let v = "default-src 'self' cdn.example.com".to_string(); vec![r().hd("Date", 0).hx("Content-Security-Policy", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Content-Security-Policy", &v)] };
    /// HTTP cache must store `Content-Type` header field (required)
    headers_store_content_type = "headers-store-Content-Type" => { let v = "text/plain;charset=utf-8".to_string(); vec![r().hd("Date", 0).hx("Content-Type", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Content-Type", &v)] };
    /// HTTP cache must store `Clear-Site-Data` header field (required)
    headers_store_clear_site_data = "headers-store-Clear-Site-Data" => { let v = "cookies".to_string(); vec![r().hd("Date", 0).hx("Clear-Site-Data", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Clear-Site-Data", &v)] };
    /// HTTP cache must store `ETag` header field (required)
    headers_store_etag = "headers-store-ETag" => { let v = "\"ghijkl\"".to_string(); vec![r().hd("Date", 0).hx("ETag", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("ETag", &v)] };
    /// HTTP cache must store `Expires` header field (required)
    headers_store_expires = "headers-store-Expires" => { let v = "Mon, 11 Jan 2038 11:11:11 GMT".to_string(); vec![r().hd("Date", 0).hx("Expires", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Expires", &v)] };
    /// HTTP cache must not store `Keep-Alive` header field (required)
    headers_store_keep_alive = "headers-store-Keep-Alive" => { let v = http_content("Keep-Alive-store-value"); vec![r().hd("Date", 0).hx("Keep-Alive", &v, false).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_missing_pair("Keep-Alive", &v)] };
    /// HTTP cache must not store `Proxy-Authenticate` header field (required)
    headers_store_proxy_authenticate = "headers-store-Proxy-Authenticate" => { let v = http_content("Proxy-Authenticate-store-value"); vec![r().hd("Date", 0).hx("Proxy-Authenticate", &v, false).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_missing_pair("Proxy-Authenticate", &v)] };
    /// HTTP cache must not store `Proxy-Authentication-Info` header field (required)
    headers_store_proxy_authentication_info = "headers-store-Proxy-Authentication-Info" => { let v = http_content("Proxy-Authentication-Info-store-value"); vec![r().hd("Date", 0).hx("Proxy-Authentication-Info", &v, false).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_missing_pair("Proxy-Authentication-Info", &v)] };
    /// HTTP cache must not store `Proxy-Authorization` header field (required)
    headers_store_proxy_authorization = "headers-store-Proxy-Authorization" => { let v = http_content("Proxy-Authorization-store-value"); vec![r().hd("Date", 0).hx("Proxy-Authorization", &v, false).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_missing_pair("Proxy-Authorization", &v)] };
    /// HTTP cache must not store `Proxy-Connection` header field (required)
    headers_store_proxy_connection = "headers-store-Proxy-Connection" => { let v = http_content("Proxy-Connection-store-value"); vec![r().hd("Date", 0).hx("Proxy-Connection", &v, false).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_missing_pair("Proxy-Connection", &v)] };
    /// HTTP cache must store `Public-Key-Pins` header field (required)
    headers_store_public_key_pins = "headers-store-Public-Key-Pins" => { let v = http_content("Public-Key-Pins-store-value"); vec![r().hd("Date", 0).hx("Public-Key-Pins", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Public-Key-Pins", &v)] };
    /// HTTP cache must store `Set-Cookie` header field (required)
    #[ignore = "lacquer fails (setup, shown as such by the suite): responses with Set-Cookie are never stored, by design; policy.rs storable"]
    headers_store_set_cookie = "headers-store-Set-Cookie" => { let v = "a=c".to_string(); vec![r().hd("Date", 0).hx("Set-Cookie", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Set-Cookie", &v)] };
    /// HTTP cache must store `Set-Cookie2` header field (required)
    headers_store_set_cookie2 = "headers-store-Set-Cookie2" => { let v = "a=c".to_string(); vec![r().hd("Date", 0).hx("Set-Cookie2", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("Set-Cookie2", &v)] };
    /// HTTP cache must not store `TE` header field (required)
    headers_store_te = "headers-store-TE" => { let v = http_content("TE-store-value"); vec![r().hd("Date", 0).hx("TE", &v, false).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_missing_pair("TE", &v)] };
    /// HTTP cache must not store `Transfer-Encoding` header field (required)
    headers_store_transfer_encoding = "headers-store-Transfer-Encoding" => { let v = http_content("Transfer-Encoding-store-value"); vec![r().hd("Date", 0).hx("Transfer-Encoding", &v, false).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_missing_pair("Transfer-Encoding", &v)] };
    /// HTTP cache must not store `Upgrade` header field (required)
    headers_store_upgrade = "headers-store-Upgrade" => { let v = http_content("Upgrade-store-value"); vec![r().hd("Date", 0).hx("Upgrade", &v, false).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_missing_pair("Upgrade", &v)] };
    /// HTTP cache must store `X-Frame-Options` header field (required)
    headers_store_x_frame_options = "headers-store-X-Frame-Options" => { let v = "sameorigin".to_string(); vec![r().hd("Date", 0).hx("X-Frame-Options", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("X-Frame-Options", &v)] };
    /// HTTP cache must store `X-XSS-Protection` header field (required)
    headers_store_x_xss_protection = "headers-store-X-XSS-Protection" => { let v = "1; mode=block".to_string(); vec![r().hd("Date", 0).hx("X-XSS-Protection", &v, true).h("Cache-Control", "max-age=3600").setup().pause(), r().cached().setup_tests(&["expected_type"]).expect_h("X-XSS-Protection", &v)] };

    // ---------------------------------------------------------------- update304.mjs
    /// HTTP cache must return stored `Test-Header` from a `304` that omits it (required)
    update304_lm_use_stored_test_header = "304-lm-use-stored-Test-Header" => {
        let va = http_content("Test-Header-value-A");
        let lm1 = "Wed, 01 Jan 2020 00:00:00 GMT";
        vec![r().h("Cache-Control", "max-age=2").h("Last-Modified", lm1).hd("Date", 0).h("Test-Header", &va).setup().pause(),
             r().h("Last-Modified", lm1).hd("Date", 0).lm_validated().expect_h("Test-Header", &va).setup_tests(&["expected_type"])]
    };
    /// HTTP cache must update and return `Test-Header` from a `304` (required)
    update304_etag_update_response_test_header = "304-etag-update-response-Test-Header" => { let va = http_content("Test-Header-value-A"); let vb = http_content("Test-Header-value-B"); let etag = "\"".to_string() + &http_content("Test-Header-etag-1") + "\""; vec![r().hd("Date", 0).hx("Test-Header", &va, true).h("Cache-Control", "max-age=2").h("ETag", &etag).setup().pause(), r().hd("Date", 0).hx("Test-Header", &vb, true).h("Cache-Control", "max-age=2").h("ETag", &etag).etag_validated().setup_tests(&["expected_type"]).expect_h("Test-Header", &vb), r().hd("Date", 0).hx("Test-Header", &vb, true).h("Cache-Control", "max-age=2").cached().setup_tests(&["expected_type"]).expect_h("Test-Header", &vb)] };
    /// HTTP cache must update and return `X-Test-Header` from a `304` (required)
    update304_etag_update_response_x_test_header = "304-etag-update-response-X-Test-Header" => { let va = http_content("X-Test-Header-value-A"); let vb = http_content("X-Test-Header-value-B"); let etag = "\"".to_string() + &http_content("X-Test-Header-etag-1") + "\""; vec![r().hd("Date", 0).hx("X-Test-Header", &va, true).h("Cache-Control", "max-age=2").h("ETag", &etag).setup().pause(), r().hd("Date", 0).hx("X-Test-Header", &vb, true).h("Cache-Control", "max-age=2").h("ETag", &etag).etag_validated().setup_tests(&["expected_type"]).expect_h("X-Test-Header", &vb), r().hd("Date", 0).hx("X-Test-Header", &vb, true).h("Cache-Control", "max-age=2").cached().setup_tests(&["expected_type"]).expect_h("X-Test-Header", &vb)] };
    /// HTTP cache must update and return `Content-Foo` from a `304` (required)
    update304_etag_update_response_content_foo = "304-etag-update-response-Content-Foo" => { let va = http_content("Content-Foo-value-A"); let vb = http_content("Content-Foo-value-B"); let etag = "\"".to_string() + &http_content("Content-Foo-etag-1") + "\""; vec![r().hd("Date", 0).hx("Content-Foo", &va, true).h("Cache-Control", "max-age=2").h("ETag", &etag).setup().pause(), r().hd("Date", 0).hx("Content-Foo", &vb, true).h("Cache-Control", "max-age=2").h("ETag", &etag).etag_validated().setup_tests(&["expected_type"]).expect_h("Content-Foo", &vb), r().hd("Date", 0).hx("Content-Foo", &vb, true).h("Cache-Control", "max-age=2").cached().setup_tests(&["expected_type"]).expect_h("Content-Foo", &vb)] };
    /// HTTP cache must update and return `X-Content-Foo` from a `304` (required)
    update304_etag_update_response_x_content_foo = "304-etag-update-response-X-Content-Foo" => { let va = http_content("X-Content-Foo-value-A"); let vb = http_content("X-Content-Foo-value-B"); let etag = "\"".to_string() + &http_content("X-Content-Foo-etag-1") + "\""; vec![r().hd("Date", 0).hx("X-Content-Foo", &va, true).h("Cache-Control", "max-age=2").h("ETag", &etag).setup().pause(), r().hd("Date", 0).hx("X-Content-Foo", &vb, true).h("Cache-Control", "max-age=2").h("ETag", &etag).etag_validated().setup_tests(&["expected_type"]).expect_h("X-Content-Foo", &vb), r().hd("Date", 0).hx("X-Content-Foo", &vb, true).h("Cache-Control", "max-age=2").cached().setup_tests(&["expected_type"]).expect_h("X-Content-Foo", &vb)] };
    /// HTTP cache must update and return `Cache-Control` from a `304` (required)
    update304_etag_update_response_cache_control = "304-etag-update-response-Cache-Control" => { let va = "max-age=1".to_string(); let vb = "max-age=3600".to_string(); let etag = "\"".to_string() + &http_content("Cache-Control-etag-1") + "\""; vec![r().hd("Date", 0).hx("Cache-Control", &va, true).h("ETag", &etag).setup().pause(), r().hd("Date", 0).hx("Cache-Control", &vb, true).h("ETag", &etag).etag_validated().setup_tests(&["expected_type"]).expect_h("Cache-Control", &vb), r().hd("Date", 0).hx("Cache-Control", &vb, true).cached().setup_tests(&["expected_type"]).expect_h("Cache-Control", &vb)] };
    /// HTTP cache must not update and return `Content-Length` from a `304` (required)
    update304_etag_update_response_content_length = "304-etag-update-response-Content-Length" => { let va = "5".to_string(); let vb = "10".to_string(); let etag = "\"".to_string() + &http_content("Content-Length-etag-1") + "\""; vec![r().hd("Date", 0).hx("Content-Length", &va, false).h("Cache-Control", "max-age=2").h("ETag", &etag).setup().pause().no_body_check(), r().hd("Date", 0).hx("Content-Length", &vb, false).h("Cache-Control", "max-age=2").h("ETag", &etag).etag_validated().setup_tests(&["expected_type"]).expect_h("Content-Length", &va).no_body_check(), r().hd("Date", 0).hx("Content-Length", &va, false).h("Cache-Control", "max-age=2").cached().setup_tests(&["expected_type"]).expect_h("Content-Length", &va).no_body_check()] };

    // ---------------------------------------------------------------- invalidation.mjs
    /// HTTP cache must invalidate the URL after a successful response to a `POST` request (required)
    invalidate_post = "invalidate-POST" => vec![fresh(), r().method("POST", "abc").setup(), r().not_cached()];
    /// HTTP cache must invalidate the URL after a successful response to a `PUT` request (required)
    invalidate_put = "invalidate-PUT" => vec![fresh(), r().method("PUT", "abc").setup(), r().not_cached()];
    /// HTTP cache must invalidate the URL after a successful response to a `DELETE` request (required)
    invalidate_delete = "invalidate-DELETE" => vec![fresh(), r().method("DELETE", "abc").setup(), r().not_cached()];
    /// HTTP cache must invalidate the URL after a successful response to a `M-SEARCH` request (required)
    invalidate_m_search = "invalidate-M-SEARCH" => vec![fresh(), r().method("M-SEARCH", "abc").setup(), r().not_cached()];
    /// An optimal HTTP cache does not invalidate the URL after a failed response to a `POST` request (optimal)
    invalidate_post_failed = "invalidate-POST-failed" => vec![fresh(), r().method("POST", "abc").status(500).setup(), r().cached()];

    // ---------------------------------------------------------------- partial.mjs
    /// An optimal HTTP cache stores complete responses and serves smaller ranges from them (byte-range-spec) (optimal)
    partial_store_complete_reuse_partial = "partial-store-complete-reuse-partial" => vec![r().h("Cache-Control", "max-age=3600").body("01234567890").setup(), r().q("Range", "bytes=0-1").cached().expect_status(206).expect_text("01")];
    /// An optimal HTTP cache stores complete responses and serves smaller ranges from them (suffix-byte-range-spec) (optimal)
    partial_store_complete_reuse_partial_suffix = "partial-store-complete-reuse-partial-suffix" => vec![r().h("Cache-Control", "max-age=3600").body("0123456789A").setup(), r().q("Range", "bytes=-1").cached().expect_status(206).expect_text("A")];
    /// An optimal HTTP cache stores complete responses and serves smaller ranges from them (absent last-byte-pos) (optimal)
    partial_store_complete_reuse_partial_no_last = "partial-store-complete-reuse-partial-no-last" => vec![r().h("Cache-Control", "max-age=3600").body("01234567890").setup(), r().q("Range", "bytes=1-").cached().expect_status(206).expect_text("1234567890")];
    /// An optimal HTTP cache stores partial content and reuses it (optimal)
    #[ignore = "lacquer fails (optimal): the suite's 206 announces bytes 4-9 (6 bytes) with a 5-byte body, which no cache can place in its representation: relayed, never stored; and a range request on a cold key fills the whole object, so the origin does not see the Range the suite expects (setup); partial.rs content_range, front.rs admit, README 'Ranges and partial responses'"]
    partial_store_partial_reuse_partial = "partial-store-partial-reuse-partial" => vec![
        r().q("Range", "bytes=-5").status(206).h("Cache-Control", "max-age=3600").h("Content-Range", "bytes 4-9/10").body("01234").expect_req_h("Range", "bytes=-5").setup(),
        r().q("Range", "bytes=-5").cached().expect_status(206).expect_text("01234")];
    /// An optimal HTTP cache stores partial responses and serves smaller ranges from them (byte-range-spec) (optimal)
    #[ignore = "lacquer fails (optimal): the suite's 206 announces bytes 4-9 (6 bytes) with a 5-byte body, which is relayed but never stored; partial.rs content_range, front.rs admit"]
    partial_store_partial_reuse_partial_byterange = "partial-store-partial-reuse-partial-byterange" => vec![
        r().q("Range", "bytes=-5").status(206).h("Cache-Control", "max-age=3600").h("Content-Range", "bytes 4-9/10").body("01234").setup(),
        r().q("Range", "bytes=6-8").cached().expect_status(206).expect_text("234")];
    /// An optimal HTTP cache stores partial responses and serves smaller ranges from them (absent last-byte-pos) (optimal)
    #[ignore = "lacquer fails (optimal): the suite's 206 announces bytes 4-9 (6 bytes) with a 5-byte body, which is relayed but never stored; partial.rs content_range, front.rs admit"]
    partial_store_partial_reuse_partial_absent = "partial-store-partial-reuse-partial-absent" => vec![
        r().q("Range", "bytes=-5").status(206).h("Cache-Control", "max-age=3600").h("Content-Range", "bytes 4-9/10").body("01234").setup(),
        r().q("Range", "bytes=6-").cached().expect_status(206).expect_text("234")];
    /// An optimal HTTP cache stores partial responses and serves smaller ranges from them (suffix-byte-range-spec) (optimal)
    #[ignore = "lacquer fails (optimal): the suite's 206 announces bytes 4-9 (6 bytes) with a 5-byte body, which is relayed but never stored (and its expected '4' is byte 8, not the last byte 9); partial.rs content_range, front.rs admit"]
    partial_store_partial_reuse_partial_suffix = "partial-store-partial-reuse-partial-suffix" => vec![
        r().q("Range", "bytes=-5").status(206).h("Cache-Control", "max-age=3600").h("Content-Range", "bytes 4-9/10").body("01234").setup(),
        r().q("Range", "bytes=-1").cached().expect_status(206).expect_text("4")];
    /// An optimal HTTP cache stores partial content and completes it (optimal)
    #[ignore = "lacquer fails (optimal): a plain GET is never completed from stored parts with a range request for the rest; here it could not be anyway, the part has no strong validator to join by (RFC 9111 3.4); proxy/mod.rs lookup"]
    partial_store_partial_complete = "partial-store-partial-complete" => vec![
        r().q("Range", "bytes=-5").status(206).h("Cache-Control", "max-age=3600").h("Content-Range", "bytes 0-4/10").body("01234").setup(),
        r().expect_req_h("range", "bytes=5-")];
    /// HTTP cache must use header fields from the new response (required)
    partial_use_headers = "partial-use-headers" => vec![
        r().h("Cache-Control", "max-age=3600").h("A", "1").body("01234567890").setup(),
        r().q("Range", "bytes=0-1").cached().expect_status(206).expect_text("01").setup_tests(&["expected_type", "expected_status", "expected_response_text"]).h("A", "2")];
    /// HTTP cache must preserve unupdated header fields from the stored response (required)
    partial_use_stored_headers = "partial-use-stored-headers" => vec![
        r().h("Cache-Control", "max-age=3600").h("A", "1").body("01234567890").setup(),
        r().q("Range", "bytes=0-1").cached().expect_status(206).expect_text("01").setup_tests(&["expected_type", "expected_status", "expected_response_text"]).expect_h("A", "1")];

    // ---------------------------------------------------------------- cc-stale.mjs
    /// An optimal cache serves cached `stale-while-revalidate` responses while revalidating in the background (optimal)
    stale_while_revalidate = "stale-while-revalidate" => vec![
        r().setup().h("Cache-Control", "max-age=0, stale-while-revalidate=3600").h("ETag", "\"abc\""),
        r().pause().expect_h("Cache-Control", "max-age=0, stale-while-revalidate=3600").expect_h("ETag", "\"abc\"").hu("Cache-Control", "max-age=3600").hu("ETag", "\"def\""),
        r().cached().expect_h("Cache-Control", "max-age=3600").expect_h("ETag", "\"def\"")];
    /// HTTP cache must not serve a stale cached `stale-if-error` response after elapsed time (required)
    stale_if_error_cc_response_expired = "stale-if-error-cc-response-expired" => vec![r().setup().h("Cache-Control", "max-age=0, stale-if-error=1").pause(), r().status(500)];
    /// HTTP cache must not serve a stale cached response after request's `stale-if-error` elapsed time (required)
    stale_if_error_cc_request_expired = "stale-if-error-cc-request-expired" => vec![r().setup().h("Cache-Control", "max-age=0").pause(), r().q("Cache-Control", "stale-if-error=1").status(500)];

    // ---------------------------------------------------------------- other.mjs / authorization.mjs
    /// HTTP cache must generate an `Age` header field when using a stored response (required)
    other_age_gen = "other-age-gen" => vec![fresh(), r().cached().expect_gt("Age", 2)];
    /// HTTP cache must update the `Age` header field when freshness is based upon `Expires` (required)
    other_age_update_expires = "other-age-update-expires" => vec![r().hd("Expires", 30 * 24 * 60 * 60).hd("Date", 0).h("Age", "30").pause().setup(), r().cached().expect_gt("Age", 32)];
    /// HTTP cache must update the `Age` header field when freshness is based upon `CC: max-age` (required)
    other_age_update_max_age = "other-age-update-max-age" => vec![fresh().h("Age", "30"), r().cached().expect_gt("Age", 32)];
    /// HTTP cache must not update the `Date` header field (required)
    other_date_update = "other-date-update" => vec![fresh(), r().cached().expect_hd("Date", 0)];
    /// HTTP cache must not update the `Date` header field when `Expires` is present (required)
    other_date_update_expires = "other-date-update-expires" => vec![r().hd("Expires", 30 * 24 * 60 * 60).hd("Date", 0).pause().setup(), r().cached().expect_hd("Date", 0)];
    /// Different query arguments must be different cache keys (required)
    query_args_different = "query-args-different" => vec![fresh().query(&format!("test={}", http_content("query-args-different-1"))), r().query(&format!("test={}", http_content("query-args-different-2"))).not_cached()];
    /// An optimal HTTP cache should not be affected by the presence of a URL query (optimal)
    query_args_same = "query-args-same" => vec![fresh().query(&format!("test={}", http_content("query-args-same"))), r().query(&format!("test={}", http_content("query-args-same"))).cached()];
    /// An optimal HTTP cache reuses a fresh response with a `Set-Cookie` header (optimal)
    #[ignore = "lacquer fails (optimal): responses with Set-Cookie are never stored, by design; policy.rs storable"]
    other_set_cookie = "other-set-cookie" => vec![fresh().h("Set-Cookie", "a=b"), r().cached()];
    /// An optimal HTTP cache reuses a fresh response when the request has a `Cookie` header (optimal)
    #[ignore = "lacquer fails (optimal): requests with Cookie bypass the cache by default (cache.cookie_requests = pass); policy.rs reusable_for"]
    other_cookie = "other-cookie" => vec![fresh(), r().q("Cookie", "a=b").cached()];
    /// HTTP shared cache must not reuse a response to a request that contained `Authorization`, even with explicit freshness (required)
    other_authorization = "other-authorization" => vec![fresh().q("Authorization", "FOO").expect_req_h("Authorization", "FOO"), r().not_cached()];
    /// An optimal HTTP shared cache reuses a response to a request that contained `Authorization`, if it has `Cache-Control: public` (optimal)
    other_authorization_public = "other-authorization-public" => vec![r().q("Authorization", "FOO").expect_req_h("Authorization", "FOO").h("Cache-Control", "max-age=3600, public").hd("Date", 0).pause().setup(), r().cached()];
    /// An optimal HTTP shared cache reuses a response to a request that contained `Authorization`, if it has `Cache-Control: s-maxage` (optimal)
    other_authorization_smaxage = "other-authorization-smaxage" => vec![r().q("Authorization", "FOO").expect_req_h("Authorization", "FOO").h("Cache-Control", "s-maxage=3600").hd("Date", 0).pause().setup(), r().cached()];
    // ---------------------------------------------------------------- surrogate-control.mjs (browser_skip: runs for shared caches)
    /// Surrogate cache must not reuse a response when `max-age` directive is targetted at another device (required)
    surrogate_max_age_other_target = "surrogate-max-age-other-target" => vec![r().hd("Date", 0).hu("Surrogate-Control", "max-age=3600;not-for-you").h("Age", "7200").setup().pause(), r().not_cached()];
    /// Surrogate cache must not reuse a response when the `Age` header is greater than its `Surrogate-Control: max-age` freshness lifetime (required)
    surrogate_max_age_age = "surrogate-max-age-age" => vec![r().hd("Date", 0).hu("Surrogate-Control", "max-age=3600").h("Age", "7200").setup().pause(), r().not_cached()];
    /// Surrogate cache must not reuse a response with `Surrogate-Control: max-age=0` (required)
    surrogate_max_age_0 = "surrogate-max-age-0" => vec![r().hu("Surrogate-Control", "max-age=0").setup().pause(), r().not_cached()];
    /// Surrogate cache must not reuse a response with a `Surrogate-Control: max-age=0` and a future `Expires` (required)
    surrogate_max_age_0_expires = "surrogate-max-age-0-expires" => vec![r().hu("Surrogate-Control", "max-age=0").hd("Expires", 10000).hd("Date", 0).setup().pause(), r().not_cached()];
    /// Surrogate cache must prefer a short `Surrogate-Control: max-age` over a long `Cache-Control: max-age` (required)
    surrogate_max_age_long_cc_max_age = "surrogate-max-age-long-cc-max-age" => vec![r().h("Cache-Control", "max-age=3600").hu("Surrogate-Control", "max-age=1").setup().pause(), r().not_cached()];
    /// Surrogate cache must not store a response with `Surrogate-Control: no-store` (required)
    surrogate_no_store = "surrogate-no-store" => vec![r().hu("Surrogate-Control", "no-store").setup().pause(), r().not_cached()];
    /// Surrogate cache must not store a response with `Surrogate-Control: no-store`, even with `Cache-Control: max-age` and `Expires` (required)
    surrogate_no_store_cc_fresh = "surrogate-no-store-cc-fresh" => vec![r().h("Cache-Control", "max-age=10000").hu("Surrogate-Control", "no-store").hd("Expires", 10000).hd("Date", 0).setup().pause(), r().not_cached()];
    /// An optimal surrogate cache reuses a response with positive `Surrogate-Control: max-age` (optimal)
    surrogate_max_age = "surrogate-max-age" => vec![r().hu("Surrogate-Control", "max-age=3600").setup().pause(), r().cached()];
    /// An optimal surrogate cache prefers a long `Surrogate-Control: max-age` over a short `Cache-Control: max-age` (optimal)
    surrogate_max_age_short_cc_max_age = "surrogate-max-age-short-cc-max-age" => vec![r().h("Cache-Control", "max-age=1").hu("Surrogate-Control", "max-age=3600").setup().pause(), r().cached()];

    // ---------------------------------------------------------------- cdn-cache-control.mjs (cdn_only: run only when the suite targets a CDN)
    /// An optimal CDN reuses a response with positive `CDN-Cache-Control: max-age` (optimal, cdn_only)
    cdn_max_age = "cdn-max-age" => vec![r().hu("CDN-Cache-Control", "max-age=3600").setup().pause(), r().cached()];
    /// CDN must not reuse a response when the `Age` header is greater than its `CDN-Cache-Control: max-age` freshness lifetime (required, cdn_only)
    cdn_max_age_age = "cdn-max-age-age" => vec![r().hd("Date", 0).hu("CDN-Cache-Control", "max-age=3600").h("Age", "7200").setup().pause(), r().not_cached()];
    /// CDN must not reuse a response with `CDN-Cache-Control: max-age=0` (required, cdn_only)
    cdn_max_age_0 = "cdn-max-age-0" => vec![r().hu("CDN-Cache-Control", "max-age=0").setup().pause(), r().not_cached()];
    /// CDN must not reuse a response with a `CDN-Cache-Control: max-age=0` and a future `Expires` (required, cdn_only)
    cdn_max_age_0_expires = "cdn-max-age-0-expires" => vec![r().hu("CDN-Cache-Control", "max-age=0").hd("Expires", 10000).hd("Date", 0).setup().pause(), r().not_cached()];
    /// CDN must prefer a short `CDN-Cache-Control: max-age` over a long `Cache-Control: max-age` (required, cdn_only)
    cdn_max_age_long_cc_max_age = "cdn-max-age-long-cc-max-age" => vec![r().h("Cache-Control", "max-age=3600").hu("CDN-Cache-Control", "max-age=1").setup().pause(), r().not_cached()];
    /// CDN must not reuse a cached response with `CDN-Cache-Control: private`, even with `Cache-Control: max-age` and `Expires` (required, cdn_only)
    cdn_private = "cdn-private" => vec![r().h("CDN-Cache-Control", "private").h("Cache-Control", "max-age=10000").hd("Expires", 10000).hd("Date", 0).setup(), r().not_cached()];
    /// CDN must not reuse a cached response with `CDN-Cache-Control: no-cache`, even with `Cache-Control: max-age` and `Expires` (required, cdn_only)
    cdn_no_cache = "cdn-no-cache" => vec![r().h("CDN-Cache-Control", "no-cache").h("Cache-Control", "max-age=10000").hd("Expires", 10000).hd("Date", 0).setup(), r().not_cached()];
    /// CDN must not store a response with `CDN-Cache-Control: no-store`, even with `Cache-Control: max-age` and `Expires` (required, cdn_only)
    cdn_no_store_cc_fresh = "cdn-no-store-cc-fresh" => vec![r().h("Cache-Control", "max-age=10000").hu("CDN-Cache-Control", "no-store").hd("Expires", 10000).hd("Date", 0).setup().pause(), r().not_cached()];
    /// An optimal CDN stores a response with a fresh `CDN-Cache-Control: max-age`, even with `Cache-Control: no-store` (required: no kind in the suite, cdn_only)
    cdn_fresh_cc_nostore = "cdn-fresh-cc-nostore" => vec![r().h("Cache-Control", "no-store").hu("CDN-Cache-Control", "max-age=10000").setup().pause(), r().cached()];
    /// CDN should ignore a `CDN-Cache-Control` that's an invalid Structured Field (unknown type) (required, cdn_only)
    cdn_cc_invalid_sh_type_unknown = "cdn-cc-invalid-sh-type-unknown" => vec![r().hu("CDN-Cache-Control", "max-age=10000, &&&&&").h("Cache-Control", "no-store").setup().pause(), r().not_cached()];
    /// CDN should ignore a `CDN-Cache-Control` that's an invalid Structured Field (wrong type) (required, cdn_only)
    cdn_cc_invalid_sh_type_wrong = "cdn-cc-invalid-sh-type-wrong" => vec![r().hu("CDN-Cache-Control", "max-age=\"10000\"").h("Cache-Control", "no-store").setup().pause(), r().not_cached()];
}

fn vary_setup() -> Req {
    r().q("Foo", "1")
        .h("Cache-Control", "max-age=5000")
        .hd("Last-Modified", -3000)
        .hd("Date", 0)
        .h("Vary", "Foo")
        .setup()
}

fn vary2_setup() -> Req {
    r().q("Foo", "1")
        .q("Bar", "abc")
        .h("Cache-Control", "max-age=5000")
        .hd("Last-Modified", -3000)
        .hd("Date", 0)
        .hu("Vary", "Foo, Bar")
        .setup()
}

fn vary3_setup() -> Req {
    r().q("Foo", "1")
        .q("Bar", "abc")
        .q("Baz", "789")
        .h("Cache-Control", "max-age=5000")
        .hd("Last-Modified", -3000)
        .hd("Date", 0)
        .hu("Vary", "Foo, Bar, Baz")
        .setup()
}

fn vary_parse_setup() -> Req {
    r().q("Foo", "1")
        .q("Baz", "789")
        .h("Cache-Control", "max-age=5000")
        .hd("Last-Modified", -3000)
        .hd("Date", 0)
        .setup()
}

fn vary_parse_req() -> Req {
    r().q("Foo", "1").q("Baz", "789").not_cached()
}
