/// The explain entries of propositions decided before any criterion is walked (SPEC 6 steps 2 to 4): one entry that
/// says which policy decided and, for consent, which value it resolved and from what.
enum ExplainDetail {
    static let unknownProfile = TraceEntry.proposition(
        .unknownProfile,
        detail: "the identity is not in the snapshot and the server answers unknown profiles with the fallback "
            + "(--unknown-profile fallback)")

    static func personalizationDenied(_ consents: ConsentRecord, _ options: EngineOptions) -> TraceEntry {
        TraceEntry.proposition(
            .personalizationDenied,
            detail: "personalization consent is denied: "
                + resolution("personalize.content", consents.personalizeContent, options))
    }

    static func marketingDenied(_ consents: ConsentRecord, _ channel: Channel, _ options: EngineOptions) -> TraceEntry {
        let name = "marketing.\(channel.rawValue)"
        let own: ConsentChoice
        switch channel {
        case .email: own = consents.marketingEmail
        case .sms: own = consents.marketingSMS
        case .push: own = consents.marketingPush
        case .call: own = consents.marketingCall
        case .web, .app, .offline: own = .empty
        }
        let why: String
        if consents.marketingAny == .n || consents.marketingAny == .dn {
            why = "marketing.any is \"\(consents.marketingAny.xdmValue ?? "")\", which denies every marketing channel"
        } else if own != .empty {
            why = resolution(name, own, options)
        } else {
            why =
                "\(name) is empty, so marketing.any decides: "
                + resolution("marketing.any", consents.marketingAny, options)
        }
        return TraceEntry.proposition(
            .marketingDenied, detail: "marketing consent for the \(channel.rawValue) channel is denied: \(why)")
    }

    /// `personalize.content is "n"`, or for an empty or `u` value, that the server's default decided.
    private static func resolution(_ name: String, _ choice: ConsentChoice, _ options: EngineOptions) -> String {
        switch choice {
        case .empty:
            return "\(name) is empty, and the server's --consent-default is \(options.consentDefault.rawValue)"
        case .u:
            return
                "\(name) is \"u\" (unknown), and the server's --consent-default is \(options.consentDefault.rawValue)"
        default:
            return "\(name) is \"\(choice.xdmValue ?? "")\""
        }
    }
}
