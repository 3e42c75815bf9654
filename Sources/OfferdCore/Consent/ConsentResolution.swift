/// What an empty (or `u`, unknown) consent resolves to: the server's
/// `--consent-default`. Raw values are the CLI spellings.
public enum ConsentDefault: String, Sendable, CaseIterable {
    /// Journey Optimizer's behaviour: an empty consent counts as consent.
    case granted
    case denied
}

/// Where an offer is shown (SPEC 3 `Placement.channel`). Raw values are the catalog spellings.
public enum Channel: String, Sendable, CaseIterable {
    case web, app, email, sms, push, call, offline

    /// Whether proposing on this channel is a marketing message that needs
    /// the profile's marketing consent for it (SPEC 6 step 2).
    public var isMarketing: Bool {
        switch self {
        case .email, .sms, .push, .call: true
        case .web, .app, .offline: false
        }
    }
}

/// Resolves XDM consent choices to granted or denied (SPEC 6 "Consent resolution").
public enum ConsentResolver {
    /// Whether one consent choice grants: `y`, `dy`, `LI`, `CT`, `CP`, `VI`, `PI`
    /// grant; `n`, `dn` and `p` (pending) deny; empty and `u` take `defaultPolicy`.
    public static func isGranted(_ choice: ConsentChoice, default defaultPolicy: ConsentDefault) -> Bool {
        switch choice {
        case .y, .dy, .LI, .CT, .CP, .VI, .PI: true
        case .n, .dn, .p: false
        case .empty, .u: defaultPolicy == .granted
        }
    }

    /// Whether personalization (`personalize.content`) is granted.
    public static func personalizationGranted(_ consents: ConsentRecord, default defaultPolicy: ConsentDefault) -> Bool
    {
        isGranted(consents.personalizeContent, default: defaultPolicy)
    }

    /// Whether marketing on `channel` is granted. Non-marketing channels are always granted.
    ///
    /// `marketing.any` = `n` or `dn` denies every channel; otherwise the
    /// channel's own value, when present (`u` included), is resolved alone;
    /// when the channel has none, `marketing.any` is resolved in its place.
    public static func marketingGranted(
        _ consents: ConsentRecord,
        channel: Channel,
        default defaultPolicy: ConsentDefault
    ) -> Bool {
        let own: ConsentChoice
        switch channel {
        case .email: own = consents.marketingEmail
        case .sms: own = consents.marketingSMS
        case .push: own = consents.marketingPush
        case .call: own = consents.marketingCall
        case .web, .app, .offline: return true
        }
        if consents.marketingAny == .n || consents.marketingAny == .dn { return false }
        if own != .empty { return isGranted(own, default: defaultPolicy) }
        return isGranted(consents.marketingAny, default: defaultPolicy)
    }
}
