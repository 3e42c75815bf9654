/// A position inside a rule expression: 1-based line and column, counted in
/// Unicode scalars (what SPEC section 4 calls characters).
struct SourcePosition: Sendable, Equatable {
    var line: Int
    var column: Int
}

/// Why a rule expression does not compile.
public struct RuleCompileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// 1-based line inside the expression.
    public var line: Int
    /// 1-based column inside the expression, in Unicode scalars.
    public var column: Int

    init(_ message: String, at position: SourcePosition) {
        self.message = message
        line = position.line
        column = position.column
    }

    public var description: String { "line \(line), column \(column): \(message)" }
}

enum RuleTokenKind: Sendable, Equatable {
    case identifier(String)
    case string(String)
    case number(Double)
    case leftParen, rightParen, leftBracket, rightBracket, comma, dot
    case plus, minus, star, slash
    case equal, notEqual, less, lessEqual, greater, greaterEqual
    case end

    var display: String {
        switch self {
        case .identifier(let name): "'\(name)'"
        case .string: "a string"
        case .number: "a number"
        case .leftParen: "'('"
        case .rightParen: "')'"
        case .leftBracket: "'['"
        case .rightBracket: "']'"
        case .comma: "','"
        case .dot: "'.'"
        case .plus: "'+'"
        case .minus: "'-'"
        case .star: "'*'"
        case .slash: "'/'"
        case .equal: "'='"
        case .notEqual: "'!='"
        case .less: "'<'"
        case .lessEqual: "'<='"
        case .greater: "'>'"
        case .greaterEqual: "'>='"
        case .end: "the end of the expression"
        }
    }
}

struct RuleToken: Sendable {
    var kind: RuleTokenKind
    var position: SourcePosition
}

/// Splits a rule expression into tokens. Whitespace (space, tab, CR, LF) separates tokens and is dropped.
struct RuleLexer {
    private let scalars: [Unicode.Scalar]
    private var index = 0
    private var line = 1
    private var column = 1

    init(_ source: String) {
        scalars = Array(source.unicodeScalars)
    }

    static func tokenize(_ source: String) throws(RuleCompileError) -> [RuleToken] {
        var lexer = RuleLexer(source)
        var tokens: [RuleToken] = []
        while true {
            let token = try lexer.next()
            tokens.append(token)
            if token.kind == .end { return tokens }
        }
    }

    private var position: SourcePosition { SourcePosition(line: line, column: column) }

    private func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    private mutating func advance() {
        if scalars[index] == "\n" {
            line += 1
            column = 1
        } else {
            column += 1
        }
        index += 1
    }

    private static func isIdentifierStart(_ scalar: Unicode.Scalar) -> Bool {
        (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || scalar == "_"
    }

    private static func isDigit(_ scalar: Unicode.Scalar) -> Bool { scalar >= "0" && scalar <= "9" }

    private mutating func next() throws(RuleCompileError) -> RuleToken {
        while let scalar = peek(), scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" {
            advance()
        }
        let start = position
        guard let scalar = peek() else { return RuleToken(kind: .end, position: start) }

        func single(_ kind: RuleTokenKind) -> RuleToken {
            advance()
            return RuleToken(kind: kind, position: start)
        }
        func pair(_ kind: RuleTokenKind) -> RuleToken {
            advance()
            advance()
            return RuleToken(kind: kind, position: start)
        }

        switch scalar {
        case "(": return single(.leftParen)
        case ")": return single(.rightParen)
        case "[": return single(.leftBracket)
        case "]": return single(.rightBracket)
        case ",": return single(.comma)
        case ".": return single(.dot)
        case "+": return single(.plus)
        case "-": return single(.minus)
        case "*": return single(.star)
        case "/": return single(.slash)
        case "=": return peek(1) == "=" ? pair(.equal) : single(.equal)
        case "<": return peek(1) == "=" ? pair(.lessEqual) : single(.less)
        case ">": return peek(1) == "=" ? pair(.greaterEqual) : single(.greater)
        case "!":
            if peek(1) == "=" { return pair(.notEqual) }
            throw RuleCompileError("unexpected '!': write 'not' for negation or '!=' for inequality", at: start)
        case "&":
            throw RuleCompileError("unexpected '&': write 'and'", at: start)
        case "|":
            throw RuleCompileError("unexpected '|': write 'or'", at: start)
        case "'":
            throw RuleCompileError("strings are written in double quotes", at: start)
        case "\"":
            return RuleToken(kind: .string(try lexString(start: start)), position: start)
        default:
            if Self.isDigit(scalar) { return RuleToken(kind: .number(try lexNumber(start: start)), position: start) }
            if Self.isIdentifierStart(scalar) {
                var name = ""
                while let next = peek(), Self.isIdentifierStart(next) || Self.isDigit(next) {
                    name.unicodeScalars.append(next)
                    advance()
                }
                return RuleToken(kind: .identifier(name), position: start)
            }
            throw RuleCompileError("unexpected character '\(scalar.escaped(asASCII: false))'", at: start)
        }
    }

    private mutating func lexString(start: SourcePosition) throws(RuleCompileError) -> String {
        advance() // opening quote
        var text = ""
        while true {
            guard let scalar = peek() else { throw RuleCompileError("unterminated string", at: start) }
            if scalar == "\"" {
                advance()
                return text
            }
            if scalar != "\\" {
                text.unicodeScalars.append(scalar)
                advance()
                continue
            }
            let escapePosition = position
            advance()
            guard let escaped = peek() else { throw RuleCompileError("unterminated string", at: start) }
            switch escaped {
            case "\"": text.append("\"")
            case "\\": text.append("\\")
            case "n": text.append("\n")
            case "t": text.append("\t")
            default:
                throw RuleCompileError(
                    "invalid escape '\\\(escaped.escaped(asASCII: false))' (allowed: \\\" \\\\ \\n \\t)",
                    at: escapePosition
                )
            }
            advance()
        }
    }

    private mutating func lexNumber(start: SourcePosition) throws(RuleCompileError) -> Double {
        var text = ""
        while let scalar = peek(), Self.isDigit(scalar) {
            text.unicodeScalars.append(scalar)
            advance()
        }
        if peek() == ".", let afterDot = peek(1), Self.isDigit(afterDot) {
            text.append(".")
            advance()
            while let scalar = peek(), Self.isDigit(scalar) {
                text.unicodeScalars.append(scalar)
                advance()
            }
        } else if peek() == ".", peek(1).map({ !Self.isIdentifierStart($0) }) ?? true {
            throw RuleCompileError("expected digits after '.' in a number", at: position)
        }
        if let scalar = peek(), Self.isIdentifierStart(scalar) {
            throw RuleCompileError("unexpected '\(scalar)' after a number (exponents are not supported)", at: position)
        }
        guard let value = Double(text), value.isFinite else {
            throw RuleCompileError("number out of range", at: start)
        }
        return value
    }
}
