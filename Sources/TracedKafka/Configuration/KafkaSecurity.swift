import Foundation

/// How a client secures its connections: TLS, SASL authentication, both, or neither — mapped to librdkafka's
/// `security.protocol`, `ssl.*` and `sasl.*` properties and checked when the client is made. A configuration's raw
/// `properties` still win over what this sets.
///
/// ```swift
/// import Foundation
/// import TracedKafka
///
/// let secret = ProcessInfo.processInfo.environment["KAFKA_PASSWORD"] ?? ""
/// var configuration = KafkaProducerConfiguration(bootstrapServers: ["kafka.example.com:9093"])
/// configuration.security = .sasl(.scramSHA512(username: "checkout", password: secret),
///                                tls: .init(trustRoots: .file("/etc/ssl/kafka-ca.pem")))
/// ```
///
/// The file queue ignores it.
public struct KafkaSecurity: Sendable, Hashable {
    /// TLS: whom to trust, which certificate to present, how strictly to check the broker's.
    public struct TLS: Sendable, Hashable {
        /// The certificate authorities a broker's certificate must chain to.
        public struct TrustRoots: Sendable, Hashable {
            enum Kind: Hashable {
                case system
                case file(String)
                case pem(String)
            }

            let kind: Kind

            /// The operating system's store (librdkafka probes the usual locations).
            public static let system = TrustRoots(kind: .system)
            /// A PEM file of CA certificates.
            /// - Parameter path: The file.
            public static func file(_ path: String) -> TrustRoots { TrustRoots(kind: .file(path)) }
            /// CA certificates in PEM text.
            /// - Parameter pem: The certificates.
            public static func pem(_ pem: String) -> TrustRoots { TrustRoots(kind: .pem(pem)) }
        }

        /// The certificate and key the client presents (mutual TLS).
        public struct ClientCertificate: Sendable, Hashable {
            enum Source: Hashable {
                case files(certificate: String, key: String)
                case pem(certificate: String, key: String)
            }

            let source: Source
            let keyPassword: String?

            /// A certificate (chain) and its private key in PEM files.
            /// - Parameters:
            ///   - certificate: The certificate file.
            ///   - key: The private key file.
            ///   - keyPassword: The key's password, if it is encrypted.
            public static func files(certificate: String, key: String, keyPassword: String? = nil) -> ClientCertificate {
                ClientCertificate(source: .files(certificate: certificate, key: key), keyPassword: keyPassword)
            }

            /// A certificate (chain) and its private key in PEM text.
            /// - Parameters:
            ///   - certificate: The certificate.
            ///   - key: The private key.
            ///   - keyPassword: The key's password, if it is encrypted.
            public static func pem(certificate: String, key: String, keyPassword: String? = nil) -> ClientCertificate {
                ClientCertificate(source: .pem(certificate: certificate, key: key), keyPassword: keyPassword)
            }
        }

        /// Whom to trust.
        public var trustRoots: TrustRoots
        /// The client's own certificate, for brokers that require one.
        public var clientCertificate: ClientCertificate?
        /// Whether the broker's certificate is verified at all (`enable.ssl.certificate.verification`). Turn it off
        /// only for tests.
        public var verifiesBrokerCertificate: Bool
        /// Whether the broker's certificate must name the host connected to
        /// (`ssl.endpoint.identification.algorithm`).
        public var verifiesHostname: Bool

        /// TLS settings.
        /// - Parameters:
        ///   - trustRoots: Whom to trust (the system's store by default).
        ///   - clientCertificate: The client's certificate, if brokers ask for one.
        ///   - verifiesBrokerCertificate: Whether the broker's certificate is verified.
        ///   - verifiesHostname: Whether it must name the host.
        public init(
            trustRoots: TrustRoots = .system,
            clientCertificate: ClientCertificate? = nil,
            verifiesBrokerCertificate: Bool = true,
            verifiesHostname: Bool = true
        ) {
            self.trustRoots = trustRoots
            self.clientCertificate = clientCertificate
            self.verifiesBrokerCertificate = verifiesBrokerCertificate
            self.verifiesHostname = verifiesHostname
        }
    }

    /// SASL authentication.
    public struct SASL: Sendable, Hashable {
        enum Mechanism: Hashable {
            case plain(username: String, password: String)
            case scram(sha: Int, username: String, password: String)
            case oauthBearerOIDC(clientID: String, clientSecret: String, tokenEndpoint: String, scope: String?)
        }

        let mechanism: Mechanism

        /// `PLAIN`: a user name and password, sent as they are (use it with TLS).
        /// - Parameters:
        ///   - username: The user.
        ///   - password: The password.
        public static func plain(username: String, password: String) -> SASL {
            SASL(mechanism: .plain(username: username, password: password))
        }

        /// `SCRAM-SHA-256`: a user name and password, never sent.
        /// - Parameters:
        ///   - username: The user.
        ///   - password: The password.
        public static func scramSHA256(username: String, password: String) -> SASL {
            SASL(mechanism: .scram(sha: 256, username: username, password: password))
        }

        /// `SCRAM-SHA-512`: a user name and password, never sent.
        /// - Parameters:
        ///   - username: The user.
        ///   - password: The password.
        public static func scramSHA512(username: String, password: String) -> SASL {
            SASL(mechanism: .scram(sha: 512, username: username, password: password))
        }

        /// `OAUTHBEARER` with tokens librdkafka fetches itself from an OpenID Connect token endpoint (client
        /// credentials grant; `sasl.oauthbearer.method=oidc`).
        /// - Parameters:
        ///   - clientID: The OAuth client.
        ///   - clientSecret: Its secret.
        ///   - tokenEndpoint: The token endpoint's URL (`https://…`).
        ///   - scope: The scope to ask for, if any.
        public static func oauthBearer(clientID: String, clientSecret: String, tokenEndpoint: String, scope: String? = nil) -> SASL {
            SASL(mechanism: .oauthBearerOIDC(clientID: clientID, clientSecret: clientSecret, tokenEndpoint: tokenEndpoint, scope: scope))
        }
    }

    /// TLS, or `nil` for plaintext connections.
    public var tls: TLS?
    /// SASL authentication, or `nil` for none.
    public var sasl: SASL?

    /// Security settings.
    /// - Parameters:
    ///   - tls: TLS, or `nil` for plaintext.
    ///   - sasl: SASL, or `nil` for none.
    public init(tls: TLS? = nil, sasl: SASL? = nil) {
        self.tls = tls
        self.sasl = sasl
    }

    /// Plaintext, no authentication: librdkafka's default.
    public static let plaintext = KafkaSecurity()

    /// TLS without SASL.
    /// - Parameter tls: The TLS settings.
    public static func tls(_ tls: TLS = TLS()) -> KafkaSecurity { KafkaSecurity(tls: tls) }

    /// SASL, over TLS by default (`SASL_SSL`); with `tls: nil`, over plaintext (`SASL_PLAINTEXT`).
    /// - Parameters:
    ///   - sasl: The mechanism and its credentials.
    ///   - tls: The TLS settings, or `nil` for plaintext.
    public static func sasl(_ sasl: SASL, tls: TLS? = TLS()) -> KafkaSecurity { KafkaSecurity(tls: tls, sasl: sasl) }

    /// The librdkafka properties these settings stand for; none for plaintext, so librdkafka's defaults hold.
    /// - Throws: ``KafkaError/Code/configuration`` for a file that cannot be read, an empty user name, password,
    ///   client id or secret, or a token endpoint that is not a URL.
    func rdKafkaProperties() throws -> [(String, String)] {
        var result: [(String, String)] = []
        switch (tls != nil, sasl != nil) {
        case (false, false): return []
        case (true, false): result.append(("security.protocol", "ssl"))
        case (false, true): result.append(("security.protocol", "sasl_plaintext"))
        case (true, true): result.append(("security.protocol", "sasl_ssl"))
        }
        if let tls {
            switch tls.trustRoots.kind {
            case .system: result.append(("ssl.ca.location", "probe"))
            case .file(let path): result.append(("ssl.ca.location", try Self.readable(path, "the CA file")))
            case .pem(let pem): result.append(("ssl.ca.pem", try Self.nonEmpty(pem, "the CA certificates")))
            }
            if let certificate = tls.clientCertificate {
                switch certificate.source {
                case .files(let cert, let key):
                    result.append(("ssl.certificate.location", try Self.readable(cert, "the client certificate file")))
                    result.append(("ssl.key.location", try Self.readable(key, "the client key file")))
                case .pem(let cert, let key):
                    result.append(("ssl.certificate.pem", try Self.nonEmpty(cert, "the client certificate")))
                    result.append(("ssl.key.pem", try Self.nonEmpty(key, "the client key")))
                }
                if let password = certificate.keyPassword { result.append(("ssl.key.password", password)) }
            }
            result.append(("enable.ssl.certificate.verification", tls.verifiesBrokerCertificate ? "true" : "false"))
            result.append(("ssl.endpoint.identification.algorithm", tls.verifiesHostname ? "https" : "none"))
        }
        if let sasl {
            switch sasl.mechanism {
            case .plain(let username, let password):
                result += try Self.passwordLogin("PLAIN", username: username, password: password)
            case .scram(let sha, let username, let password):
                result += try Self.passwordLogin("SCRAM-SHA-\(sha)", username: username, password: password)
            case .oauthBearerOIDC(let clientID, let clientSecret, let tokenEndpoint, let scope):
                guard let url = URL(string: tokenEndpoint), url.scheme == "https" || url.scheme == "http", url.host != nil else {
                    throw KafkaError(code: .configuration, reason: "The OAuth token endpoint \(String(reflecting: tokenEndpoint)) is not an http(s) URL")
                }
                result += [("sasl.mechanisms", "OAUTHBEARER"), ("sasl.oauthbearer.method", "oidc"),
                           ("sasl.oauthbearer.client.id", try Self.nonEmpty(clientID, "the OAuth client id")),
                           ("sasl.oauthbearer.client.secret", try Self.nonEmpty(clientSecret, "the OAuth client secret")),
                           ("sasl.oauthbearer.token.endpoint.url", tokenEndpoint)]
                if let scope { result.append(("sasl.oauthbearer.scope", scope)) }
            }
        }
        return result
    }

    private static func readable(_ path: String, _ what: String) throws -> String {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw KafkaError(code: .configuration, reason: "Cannot read \(what) \(path)")
        }
        return path
    }

    /// A user name and password login with `mechanism`, neither of them empty.
    private static func passwordLogin(_ mechanism: String, username: String, password: String) throws -> [(String, String)] {
        [("sasl.mechanisms", mechanism), ("sasl.username", try nonEmpty(username, "the SASL user name")),
         ("sasl.password", try nonEmpty(password, "the SASL password"))]
    }

    private static func nonEmpty(_ value: String, _ what: String) throws -> String {
        guard !value.isEmpty else { throw KafkaError(code: .configuration, reason: "\(what.prefix(1).uppercased() + what.dropFirst()) is empty") }
        return value
    }
}
