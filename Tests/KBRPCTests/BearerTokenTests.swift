import Testing

@testable import KBRPC

@Suite("The one bearer-token check")
struct BearerTokenTests {
    @Test("'Bearer <token>' matches; anything else does not")
    func matches() {
        #expect(BearerToken.matches("Bearer s3cret", token: "s3cret"))
        #expect(!BearerToken.matches("Bearer s3creT", token: "s3cret"), "a different last byte")
        #expect(!BearerToken.matches("Bearer t3cret", token: "s3cret"), "a different first byte")
        #expect(!BearerToken.matches("Bearer s3cre", token: "s3cret"), "a prefix of the token")
        #expect(!BearerToken.matches("Bearer s3cretX", token: "s3cret"), "the token and more")
        #expect(!BearerToken.matches(nil, token: "s3cret"), "no header")
        #expect(!BearerToken.matches("", token: "s3cret"), "an empty header")
        #expect(!BearerToken.matches("s3cret", token: "s3cret"), "no scheme")
        #expect(!BearerToken.matches("Basic s3cret", token: "s3cret"), "another scheme")
        #expect(!BearerToken.matches("Bearer  s3cret", token: "s3cret"), "two spaces")
    }

    @Test("constant-time equality: equal, different, different lengths, empty, non-ASCII")
    func constantTimeEquals() {
        #expect(BearerToken.constantTimeEquals("abc", "abc"))
        #expect(BearerToken.constantTimeEquals("", ""))
        #expect(!BearerToken.constantTimeEquals("abc", "abd"))
        #expect(!BearerToken.constantTimeEquals("abc", "ab"))
        #expect(!BearerToken.constantTimeEquals("ab", "abc"))
        #expect(!BearerToken.constantTimeEquals("", "a"))
        #expect(!BearerToken.constantTimeEquals("ab\u{0}", "ab"), "a trailing NUL is not the end")
        #expect(BearerToken.constantTimeEquals("clé", "clé"))
        #expect(!BearerToken.constantTimeEquals("clé", "cle"))
    }
}
