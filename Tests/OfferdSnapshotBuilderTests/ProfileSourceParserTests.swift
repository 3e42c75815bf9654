import OfferdCore
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot
@testable import OfferdSnapshotBuilder

@Suite("Profile source parsing (SPEC 5.1)")
struct ProfileSourceParserTests {
    private func parse(_ line: String) throws(ProfileSourceError) -> InMemoryProfile {
        try ProfileSourceParser.parse(line: Array(line.utf8))
    }

    @Test func parsesTheSpecExample() throws {
        let profile = try parse(
            #"{"identities":[{"namespace":"ECID","id":"4711"},{"namespace":"Email","id":"ana@example.com"}],"#
                + #""consents":{"personalize":{"content":{"val":"y"}},"#
                + #""marketing":{"any":{"val":"y"},"email":{"val":"n"},"sms":{"val":"y"},"push":{"val":"y"}}},"#
                + #""audiences":["vip","cart-abandoner"],"#
                + #""attributes":{"loyalty":{"tier":"gold","points":1200},"homeAddress":{"city":"Paris"}},"#
                + #""capping":{"offer-gold-10":2}}"#)
        #expect(
            profile.identities == [
                Identity(namespace: "ECID", id: "4711"), Identity(namespace: "Email", id: "ana@example.com"),
            ])
        #expect(profile.primaryIdentity == Identity(namespace: "ECID", id: "4711"))
        #expect(
            profile.consents
                == ConsentRecord(
                    personalizeContent: .y, marketingAny: .y, marketingEmail: .n, marketingSMS: .y, marketingPush: .y,
                    marketingCall: .empty))
        #expect(profile.audiences == ["vip", "cart-abandoner"])
        #expect(profile.attribute(at: AttributePath(["loyalty", "points"])) == .number(1200))
        #expect(profile.attribute(at: AttributePath(["homeAddress"])) == .object)
        #expect(profile.cappingCount(for: InternedName("offer-gold-10")) == 2)
    }

    @Test(arguments: ConsentChoice.allCases.filter { $0 != .empty })
    func everyXDMConsentValueIsRead(_ choice: ConsentChoice) throws {
        let value = try #require(choice.xdmValue)
        let profile = try parse(
            #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":{"val":"\#(value)"}},"#
                + #""marketing":{"call":{"val":"\#(value)"}}}}"#)
        #expect(profile.consents.personalizeContent == choice)
        #expect(profile.consents.marketingCall == choice)
        #expect(profile.consents.marketingAny == .empty)
    }

    @Test(arguments: [
        // Absent val means empty; ignored keys are not checked.
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":{}}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"collect":{"val":"bogus"},"share":{"val":null}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"#
            + #""consents":{"marketing":{"whatsApp":{"val":""},"preferred":"email"}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"#
            + #""consents":{"personalize":{"content":{"time":"x"},"other":1}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1","primary":true,"authenticatedState":"ambiguous"}]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":2.0,"b":0}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":[1,"x",true,null],"b":{"c":{"d":null}}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{}}"#,
    ])
    func acceptsValidLines(_ line: String) throws {
        let profile = try parse(line)
        #expect(profile.consents.personalizeContent == .empty)
        #expect(profile.identities.count == 1)
    }

    /// SPEC 5.1's object form: absent keys are 0; the integer form is the decision count.
    @Test func cappingObjectFormCountsEachEventType() throws {
        let profile = try parse(
            #"{"identities":[{"namespace":"ECID","id":"1"}],"#
                + #""capping":{"a":{"display":3,"interact":1},"b":{},"c":4,"d":{"decision":2,"display":0}}}"#)
        #expect(profile.capping.map(\.offerID) == ["a", "b", "c", "d"])
        #expect(
            profile.capping.map(\.counts) == [
                CappingCounts(display: 3, interact: 1), CappingCounts(), CappingCounts(decision: 4),
                CappingCounts(decision: 2),
            ])
        #expect(profile.cappingCount(for: InternedName("a"), event: .display) == 3)
        #expect(profile.cappingCount(for: InternedName("a"), event: .decision) == 0)
        #expect(profile.cappingCount(for: InternedName("c"), event: .interact) == 0)
        // Written back, the integer form stays an integer and the object form keeps its non-zero counts.
        let line = ProfileSourceWriter.line(profile)
        #expect(line.contains(#""capping":{"a":{"display":3,"interact":1},"b":0,"c":4,"d":2}"#), "\(line)")
        #expect(try parse(line).capping.map(\.counts) == profile.capping.map(\.counts))
    }

    @Test func cappingTwoPointZeroReadsAsTwo() throws {
        let profile = try parse(#"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":2.0}}"#)
        #expect(profile.cappingCount(for: InternedName("a")) == 2)
    }

    @Test(arguments: [
        ("not json", "invalid JSON"),
        (#"[1]"#, "must be a JSON object"),
        (#"{}"#, "missing \"identities\""),
        (#"{"identities":[]}"#, "at least one"),
        (#"{"identities":{}}"#, "must be an array"),
        (#"{"identities":["ECID:1"]}"#, "identities[0] must be an object"),
        (#"{"identities":[{"namespace":"ECID"}]}"#, "no \"id\""),
        (#"{"identities":[{"id":"1"}]}"#, "no \"namespace\""),
        (#"{"identities":[{"namespace":"ECID","id":1}]}"#, "identities[0].id must be a string"),
        (#"{"identities":[{"namespace":"","id":"1"}]}"#, "is empty"),
        (#"{"identities":[{"namespace":"ECID","id":"1","extra":1}]}"#, "unknown key \"extra\""),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"extra":1}"#, "unknown key \"extra\""),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"identities":[{"namespace":"ECID","id":"2"}]}"#,
            "invalid JSON"
        ),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"consents":[]}"#, "\"consents\" must be an object"),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":{"val":""}}}}"#,
            "not an XDM consent value"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":{"val":"Y"}}}}"#,
            "not an XDM consent value"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":{"val":"li"}}}}"#,
            "not an XDM consent value"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":{"val":null}}}}"#,
            "consents.personalize.content.val must be a string"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"marketing":{"email":{"val":true}}}}"#,
            "consents.marketing.email.val must be a string"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"marketing":{"sms":"y"}}}"#,
            "consents.marketing.sms must be an object"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"marketing":[]}}"#,
            "consents.marketing must be an object"
        ),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"audiences":"vip"}"#, "\"audiences\" must be an array"),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"audiences":[1]}"#, "audiences[0] must be a string"),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":[]}"#, "\"attributes\" must be an object"),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":[[1]]}}"#, "attributes.a[0] is an array"),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":{"b":[1,{"c":1}]}}}"#,
            "attributes.a.b[1] is an object"
        ),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":2.5}}"#, "integer >= 0"),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":-1}}"#, "integer >= 0"),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":"2"}}"#,
            "capping.a must be a number or an object"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":{"click":1}}}"#,
            "capping.a.click is not a capping event"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":{"display":-1}}}"#,
            "capping.a.display must be an integer >= 0"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":{"interact":1.5}}}"#,
            "capping.a.interact must be an integer >= 0"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":{"decision":"1"}}}"#,
            "capping.a.decision must be a number"
        ),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":{"decision":null}}}"#,
            "capping.a.decision must be a number"
        ),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":{"display":1,"display":2}}}"#, "duplicate"),
        (
            #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":[1]}}"#,
            "capping.a must be a number or an object"
        ),
        (#"{"identities":[{"namespace":"ECID","id":"1"}],"capping":[]}"#, "\"capping\" must be an object"),
    ])
    func refusesInvalidLines(_ line: String, _ expected: String) {
        do {
            _ = try parse(line)
            Issue.record("accepted \(line)")
        } catch {
            #expect(error.message.contains(expected), "\(error.message) does not mention \(expected)")
        }
    }
}
