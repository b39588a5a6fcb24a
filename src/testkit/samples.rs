//! Fixtures: typical records, for checks and for adapter tests of your own.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A typical pending sign-in challenge, version 0, whose id is derived from
/// `id_seed` (distinct seeds give distinct ids).
///
/// `now` is truncated to whole seconds in UTC; the record is created at
/// that instant and expires 10 minutes later. It has an account, goes to a
/// Japanese mobile number by SMS (voice as the fallback) and holds one send.
#[must_use]
pub fn sample_challenge(id_seed: u8, now: OffsetDateTime) -> ChallengeRecord {
    let now = whole_seconds(now);
    let mut id = [id_seed; 16];
    id[0] = 0x4e;
    id[1] = 0x53;
    let expires_at = now + Duration::minutes(10);
    ChallengeRecord {
        id: ChallengeId::from_bytes(id),
        version: 0,
        purpose: Purpose::SignIn,
        account: Some(AccountId::new(format!("testkit-account-{id_seed}"))),
        destination: Destination::phone(PHONE).expect("a valid phone number"),
        locale: Locale::Ja,
        channels: vec![Channel::Sms, Channel::Voice],
        channel_index: 0,
        state: ChallengeState::Pending,
        digits: 6,
        failed_attempts: 0,
        max_attempts: 5,
        sends: vec![SendRecord {
            channel: Channel::Sms,
            sent_at: now,
            expires_at,
            code: KeyedHash {
                key_id: KeyId(1),
                tag: Tag([id_seed; 32]),
            },
            failed_transiently: false,
        }],
        delivery_attempts: 1,
        link: None,
        created_at: now,
        expires_at,
        consumed_by: None,
        epoch: Some(u64::MAX - 3),
        incarnation: SAMPLE_INCARNATION,
    }
}

/// The record incarnation the samples carry: above 2⁵³, so a store that
/// passes it through a double (a JSON number in Lua, say) loses its low
/// bits and fails the round trip.
pub const SAMPLE_INCARNATION: u64 = 0x9E37_79B9_7F4A_7C15;

/// A recovery set of 10 codes, version 0, whose salt and code
/// hashes are derived from `seed` (distinct seeds give distinct salts and
/// hashes).
///
/// `now` is truncated to whole seconds in UTC; the set was created at that
/// instant. Codes are 12 characters long, hashed under key id 1; code 3
/// was used five minutes later, by a sign-in attempt.
#[must_use]
pub fn sample_recovery_set(seed: u8, now: OffsetDateTime) -> RecoverySet {
    let now = whole_seconds(now);
    let mut salt = [seed; 16];
    salt[0] = 0x52;
    salt[1] = 0x53;
    RecoverySet {
        salt,
        version: 0,
        created_at: now,
        length: 12,
        codes: (0..10u8)
            .map(|i| {
                let mut tag = [seed; 32];
                tag[0] = i;
                // Code 3 was used by a sign-in attempt.
                let used = i == 3;
                StoredRecoveryCode {
                    hash: KeyedHash {
                        key_id: KeyId(1),
                        tag: Tag(tag),
                    },
                    used_at: used.then_some(now + Duration::minutes(5)),
                    used_by: used.then_some(KeyedHash {
                        key_id: KeyId(2),
                        tag: Tag([seed ^ 0x5A; 32]),
                    }),
                }
            })
            .collect(),
    }
}

/// A device of `account` trusted at `now` for 30 days, version 0, epoch 0,
/// not revoked, whose id and token hash are derived from `id_seed` (distinct
/// seeds give distinct ids; the same seed gives the same id whatever the
/// account).
///
/// `now` is truncated to whole seconds in UTC.
#[must_use]
pub fn sample_device(account: &AccountId, id_seed: u8, now: OffsetDateTime) -> DeviceRecord {
    let now = whole_seconds(now);
    DeviceRecord {
        account: account.clone(),
        id: device_id(id_seed),
        version: 0,
        token: KeyedHash {
            key_id: KeyId(1),
            tag: Tag([id_seed; 32]),
        },
        label: format!("testkit device {id_seed}"),
        created_at: now,
        last_used_at: now,
        expires_at: now + Duration::days(30),
        epoch: 0,
        revoked_at: None,
        incarnation: SAMPLE_INCARNATION,
    }
}

/// A account record of `account` as its first commit stores it: version 1,
/// created at `now`, with a verified phone number (`+819012345678`) that
/// two-step sign-in uses and an unverified email address, and a grace state
/// that records the account's creation and both contacts.
///
/// `now` is truncated to whole seconds in UTC.
#[must_use]
pub fn sample_contact_book(account: &AccountId, now: OffsetDateTime) -> AccountRecord {
    let now = whole_seconds(now);
    let phone = phone();
    let email = Destination::email("Taro.Yamada+2fa@Example.co.jp").expect("a valid email");
    let policy = GracePolicy::new();
    let mut grace = GraceState::new();
    let _ = grace.apply(&policy, GraceEvent::AccountCreated, now);
    let _ = grace.apply(&policy, GraceEvent::added(&phone, true), now);
    let _ = grace.apply(&policy, GraceEvent::added(&email, false), now);
    AccountRecord {
        account: account.clone(),
        version: 1,
        contacts: vec![
            ContactEntry {
                destination: phone,
                added_at: now,
                verified_at: Some(now + Duration::seconds(30)),
                two_factor: true,
                phone_type: Some(PhoneType::Mobile),
            },
            ContactEntry {
                destination: email,
                added_at: now + Duration::minutes(1),
                verified_at: None,
                two_factor: false,
                phone_type: None,
            },
        ],
        grace,
        created_at: now,
        factors: Factors {
            two_factor_since: Some(now),
            authenticator: Some(AuthenticatorRecord::new(
                "GEZDGNBVGY3TQOJQ".into(),
                Some(58_789_456),
                now,
            )),
            pending_authenticator: None,
            recovery: Some(sample_recovery_set(0x5B, now)),
        },
        epoch: u64::MAX - 7,
        last_change: Some(ChallengeId::from_bytes([0x5C; 16])),
        incarnation: SAMPLE_INCARNATION,
    }
}

/// A combined sign-up verification (email **and** phone), version 0, no
/// account yet, no member verified, whose id and member challenge ids are
/// derived from `id_seed` (distinct seeds give distinct ids).
///
/// `now` is truncated to whole seconds in UTC; the verification starts at
/// that instant and expires 30 minutes later.
#[must_use]
pub fn sample_verification(id_seed: u8, now: OffsetDateTime) -> VerificationRecord {
    let now = whole_seconds(now);
    let mut id = [id_seed; 16];
    id[0] = 0x56;
    id[1] = 0x46;
    let challenge = |member: u8| {
        let mut bytes = [id_seed; 16];
        bytes[0] = 0x4d;
        bytes[1] = member;
        ChallengeId::from_bytes(bytes)
    };
    VerificationRecord {
        id: VerificationId::from_bytes(id),
        version: 0,
        purpose: Purpose::SignUp,
        account: None,
        members: vec![
            MemberRecord {
                destination: Destination::email("hanako@example.jp").expect("a valid email"),
                challenge: challenge(0),
                verified_at: None,
            },
            MemberRecord {
                destination: phone(),
                challenge: challenge(1),
                verified_at: None,
            },
        ],
        locale: Locale::Ja,
        created_at: now,
        expires_at: now + Duration::minutes(30),
        completed_at: None,
        taken_at: None,
        taken_by: None,
    }
}
