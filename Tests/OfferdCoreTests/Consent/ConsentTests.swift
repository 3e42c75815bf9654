import Testing

@testable import OfferdCore

@Suite struct ConsentResolutionTests {
    static let granting: [ConsentChoice] = [.y, .dy, .LI, .CT, .CP, .VI, .PI]
    static let denying: [ConsentChoice] = [.n, .dn, .p]
    static let defaulting: [ConsentChoice] = [.empty, .u]

    @Test func everyChoiceIsClassified() {
        #expect(Set(Self.granting + Self.denying + Self.defaulting) == Set(ConsentChoice.allCases))
    }

    @Test(arguments: ConsentChoice.allCases, ConsentDefault.allCases)
    func resolvesEveryValueUnderBothDefaults(choice: ConsentChoice, policy: ConsentDefault) {
        let expected: Bool
        if Self.granting.contains(choice) {
            expected = true
        } else if Self.denying.contains(choice) {
            expected = false
        } else {
            expected = policy == .granted
        }
        #expect(ConsentResolver.isGranted(choice, default: policy) == expected)
        let record = ConsentRecord(personalizeContent: choice)
        #expect(ConsentResolver.personalizationGranted(record, default: policy) == expected)
    }

    static let marketingChannels: [Channel] = [.email, .sms, .push, .call]

    static func record(any: ConsentChoice, channel: Channel, value: ConsentChoice) -> ConsentRecord {
        var record = ConsentRecord(marketingAny: any)
        switch channel {
        case .email: record.marketingEmail = value
        case .sms: record.marketingSMS = value
        case .push: record.marketingPush = value
        case .call: record.marketingCall = value
        default: break
        }
        return record
    }

    /// The SPEC 6 step 2 rule, restated independently of the implementation.
    static func expectedMarketing(any: ConsentChoice, own: ConsentChoice, policy: ConsentDefault) -> Bool {
        if any == .n || any == .dn { return false }
        let effective = own == .empty ? any : own
        switch effective {
        case .n, .dn, .p: return false
        case .empty, .u: return policy == .granted
        default: return true
        }
    }

    @Test(arguments: marketingChannels, ConsentDefault.allCases)
    func marketingAnyPrecedenceOnEveryChannel(channel: Channel, policy: ConsentDefault) {
        for any in ConsentChoice.allCases {
            for own in ConsentChoice.allCases {
                let record = Self.record(any: any, channel: channel, value: own)
                let granted = ConsentResolver.marketingGranted(record, channel: channel, default: policy)
                #expect(
                    granted == Self.expectedMarketing(any: any, own: own, policy: policy),
                    "channel \(channel) any \(any) own \(own) default \(policy)"
                )
            }
        }
    }

    @Test func namedPrecedenceCases() {
        // any = n denies even an explicit yes.
        #expect(
            !ConsentResolver.marketingGranted(
                ConsentRecord(marketingAny: .n, marketingEmail: .y),
                channel: .email,
                default: .granted
            )
        )
        #expect(
            !ConsentResolver.marketingGranted(
                ConsentRecord(marketingAny: .dn, marketingSMS: .y),
                channel: .sms,
                default: .granted
            )
        )
        // any = p does not deny a channel that has its own yes.
        #expect(
            ConsentResolver.marketingGranted(
                ConsentRecord(marketingAny: .p, marketingPush: .y),
                channel: .push,
                default: .granted
            )
        )
        // The channel's own u is resolved alone (default), even when any says yes.
        #expect(
            !ConsentResolver.marketingGranted(
                ConsentRecord(marketingAny: .y, marketingCall: .u),
                channel: .call,
                default: .denied
            )
        )
        // No channel value: any is resolved in its place.
        #expect(!ConsentResolver.marketingGranted(ConsentRecord(marketingAny: .p), channel: .email, default: .granted))
        #expect(ConsentResolver.marketingGranted(ConsentRecord(marketingAny: .y), channel: .email, default: .denied))
        // Another channel's no does not leak.
        #expect(
            ConsentResolver.marketingGranted(
                ConsentRecord(marketingSMS: .n),
                channel: .email,
                default: .granted
            )
        )
    }

    @Test(arguments: [Channel.web, .app, .offline])
    func nonMarketingChannelsNeedNoMarketingConsent(channel: Channel) {
        #expect(!channel.isMarketing)
        let deniedEverything = ConsentRecord(
            marketingAny: .n,
            marketingEmail: .n,
            marketingSMS: .n,
            marketingPush: .n,
            marketingCall: .n
        )
        #expect(ConsentResolver.marketingGranted(deniedEverything, channel: channel, default: .denied))
    }

    @Test func marketingChannelsAreExactlyFour() {
        #expect(Channel.allCases.filter(\.isMarketing) == [.email, .sms, .push, .call])
    }
}
