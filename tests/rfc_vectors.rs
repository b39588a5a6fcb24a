//! Known-answer tests from RFC 4226 Appendix D and RFC 6238 Appendix B
//! (SHA-256 and SHA-512 seeds as corrected by errata 2866).

use ninsho::otp::{Algorithm, Hotp, OtpSecret, Totp, Window};

const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

fn totp(seed: &[u8], algorithm: Algorithm) -> Totp {
    Totp::builder(OtpSecret::from_bytes(seed.to_vec()).unwrap())
        .algorithm(algorithm)
        .digits(8)
        .account("rfc6238")
        .build()
        .unwrap()
}

#[test]
fn rfc4226_appendix_d() {
    let hotp = Hotp::builder(OtpSecret::from_bytes(SEED_SHA1.to_vec()).unwrap())
        .account("rfc4226")
        .build()
        .unwrap();
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    for (counter, want) in expected.iter().enumerate() {
        let counter = counter as u64;
        assert_eq!(hotp.code(counter).to_string(), *want, "counter {counter}");
        // And each verifies exactly at its own counter.
        let m = hotp.verify(want, counter).unwrap();
        assert_eq!((m.counter, m.next_counter), (counter, counter + 1));
    }
}

#[test]
fn rfc6238_appendix_b() {
    // (T, SHA-1, SHA-256, SHA-512)
    let table = [
        (59u64, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ];
    let sha1 = totp(SEED_SHA1, Algorithm::Sha1);
    let sha256 = totp(SEED_SHA256, Algorithm::Sha256);
    let sha512 = totp(SEED_SHA512, Algorithm::Sha512);
    for (t, c1, c256, c512) in table {
        assert_eq!(sha1.code_at(t).to_string(), c1, "SHA-1 at {t}");
        assert_eq!(sha256.code_at(t).to_string(), c256, "SHA-256 at {t}");
        assert_eq!(sha512.code_at(t).to_string(), c512, "SHA-512 at {t}");
        for (auth, code) in [(&sha1, c1), (&sha256, c256), (&sha512, c512)] {
            let m = auth.verify(code, t, None).unwrap();
            assert_eq!(m.step, t / 30);
            assert_eq!(m.drift, 0);
        }
    }
}

#[test]
fn rfc6238_vectors_through_uri() {
    // The same vectors, reading the authenticator from a key URI.
    let uri = "otpauth://totp/RFC:6238?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA&issuer=RFC&algorithm=SHA512&digits=8&period=30";
    let t = Totp::from_uri(uri).unwrap();
    assert_eq!(t.secret().expose_secret(), SEED_SHA512);
    assert_eq!(t.code_at(59).to_string(), "90693936");
    assert_eq!(t.to_uri(), uri);
}

#[test]
fn window_is_exact_at_its_edges() {
    let t = Totp::builder(OtpSecret::from_bytes(SEED_SHA1.to_vec()).unwrap())
        .account("edges")
        .window(Window::new(1, 1))
        .build()
        .unwrap();
    let now = 1_111_111_111; // step 37037037, 1 s into it
    let step = t.step_at(now);
    for (s, accepted) in [
        (step - 2, false),
        (step - 1, true),
        (step, true),
        (step + 1, true),
        (step + 2, false),
    ] {
        let code = t.code_at_step(s).to_string();
        assert_eq!(
            t.verify(&code, now, None).is_ok(),
            accepted,
            "step offset {}",
            s as i64 - step as i64
        );
    }
    // The last second of a step and the first of the next one move the window.
    let boundary = (step + 1) * 30;
    let old = t.code_at_step(step - 1).to_string();
    assert!(t.verify(&old, boundary - 1, None).is_ok());
    assert!(t.verify(&old, boundary, None).is_err());
}
