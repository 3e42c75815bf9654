internal import COfferdProto

/// The `grpc.reflection.v1` (and `v1alpha`) ServerReflectionInfo messages.
///
/// Both versions are one message set under two package names: same field names, numbers and types, so the
/// same bytes. The v1 protobuf-c code reads and writes both; the v1alpha code is generated (the protos stay
/// whole) but not needed.
public enum ReflectionCodec {
    /// What a ServerReflectionRequest asks for (its `message_request` oneof).
    public enum Query: Equatable, Sendable {
        /// `list_services`: every service on the port.
        case listServices
        /// `file_by_filename`: a file and what it imports.
        case fileByFilename(String)
        /// `file_containing_symbol`: the file declaring a fully-qualified symbol, and what it imports.
        case fileContainingSymbol(String)
        /// `file_containing_extension`: offerd's protos declare no extensions.
        case fileContainingExtension(containingType: String, number: Int32)
        /// `all_extension_numbers_of_type`.
        case allExtensionNumbersOfType(String)
        /// No field of the oneof was set.
        case unset
    }

    /// What the server answers (its `message_response` oneof).
    public enum Answer: Equatable, Sendable {
        /// `file_descriptor_response`: serialized FileDescriptorProtos.
        case files([[UInt8]])
        /// `list_services_response`: full service names.
        case services([String])
        /// `all_extension_numbers_response`.
        case extensionNumbers(baseType: String, numbers: [Int32])
        /// `error_response`: a gRPC status code and a message.
        case error(code: Int32, message: String)
    }

    /// Decodes a ServerReflectionRequest.
    public static func decodeRequest(_ bytes: UnsafeRawBufferPointer) throws(WireDecodeError) -> (
        host: String, query: Query
    ) {
        let arena = ProtoArena(initialCapacity: 256 + bytes.count)
        return try withExtendedLifetime(arena) { () throws(WireDecodeError) -> (host: String, query: Query) in
            guard let request = Self.unpack(bytes, arena: arena)?.pointee else {
                throw WireDecodeError(message: "undecodable protobuf: not a valid ServerReflectionRequest")
            }
            return (swiftString(request.host), Self.query(of: request))
        }
    }

    /// Encodes the ServerReflectionResponse to `requestBytes` (a ServerReflectionRequest, echoed as
    /// `original_request`, as the reflection protocol asks).
    public static func encodeResponse(
        _ answer: Answer, validHost: String, requestBytes: UnsafeRawBufferPointer
    ) -> [UInt8] {
        let arena = ProtoArena(initialCapacity: 1024 + requestBytes.count)
        return withExtendedLifetime(arena) {
            var response = Grpc__Reflection__V1__ServerReflectionResponse()
            grpc__reflection__v1__server_reflection_response__init(&response)
            response.valid_host = arena.cString(validHost)
            response.original_request = Self.unpack(requestBytes, arena: arena)
            switch answer {
            case .files(let files):
                let message = arena.allocate(Grpc__Reflection__V1__FileDescriptorResponse.self, count: 1)
                grpc__reflection__v1__file_descriptor_response__init(message)
                message.pointee.n_file_descriptor_proto = files.count
                let array = arena.allocate(ProtobufCBinaryData.self, count: max(files.count, 1))
                for (index, file) in files.enumerated() {
                    let data = arena.allocate(UInt8.self, count: max(file.count, 1))
                    data.initialize(from: file, count: file.count)
                    (array + index).initialize(to: ProtobufCBinaryData(len: file.count, data: data))
                }
                message.pointee.file_descriptor_proto = array
                response.message_response_case =
                    GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE
                response.file_descriptor_response = message
            case .services(let names):
                let message = arena.allocate(Grpc__Reflection__V1__ListServiceResponse.self, count: 1)
                grpc__reflection__v1__list_service_response__init(message)
                let services = names.map { name in
                    let service = arena.allocate(Grpc__Reflection__V1__ServiceResponse.self, count: 1)
                    grpc__reflection__v1__service_response__init(service)
                    service.pointee.name = arena.cString(name)
                    return service
                }
                message.pointee.n_service = services.count
                message.pointee.service = arena.pointerArray(services) { $0 }
                response.message_response_case =
                    GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE
                response.list_services_response = message
            case .extensionNumbers(let baseType, let numbers):
                let message = arena.allocate(Grpc__Reflection__V1__ExtensionNumberResponse.self, count: 1)
                grpc__reflection__v1__extension_number_response__init(message)
                message.pointee.base_type_name = arena.cString(baseType)
                message.pointee.n_extension_number = numbers.count
                if !numbers.isEmpty {
                    let array = arena.allocate(Int32.self, count: numbers.count)
                    array.initialize(from: numbers, count: numbers.count)
                    message.pointee.extension_number = array
                }
                response.message_response_case =
                    GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE
                response.all_extension_numbers_response = message
            case .error(let code, let text):
                let message = arena.allocate(Grpc__Reflection__V1__ErrorResponse.self, count: 1)
                grpc__reflection__v1__error_response__init(message)
                message.pointee.error_code = code
                message.pointee.error_message = arena.cString(text)
                response.message_response_case =
                    GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE
                response.error_response = message
            }
            return withUnsafePointer(to: &response) { pointer in
                let size = grpc__reflection__v1__server_reflection_response__get_packed_size(pointer)
                return packed(size: size) { grpc__reflection__v1__server_reflection_response__pack(pointer, $0) }
            }
        }
    }

    private static func unpack(
        _ bytes: UnsafeRawBufferPointer, arena: ProtoArena
    ) -> UnsafeMutablePointer<Grpc__Reflection__V1__ServerReflectionRequest>? {
        var allocator = arena.allocator
        return withNonNullBase(bytes) { base, count in
            grpc__reflection__v1__server_reflection_request__unpack(&allocator, count, base)
        }
    }

    private static func query(of request: Grpc__Reflection__V1__ServerReflectionRequest) -> Query {
        switch request.message_request_case {
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
            return .listServices
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
            return .fileByFilename(swiftString(request.file_by_filename))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
            return .fileContainingSymbol(swiftString(request.file_containing_symbol))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
            let extensionRequest = request.file_containing_extension?.pointee
            return .fileContainingExtension(
                containingType: swiftString(extensionRequest?.containing_type),
                number: extensionRequest?.extension_number ?? 0
            )
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
            return .allExtensionNumbersOfType(swiftString(request.all_extension_numbers_of_type))
        default:
            return .unset
        }
    }
}

/// The FileDescriptorSet of offerd's protos (imports included), as `proto/generate.sh` committed it.
public enum ProtoDescriptors {
    /// The serialized `google.protobuf.FileDescriptorSet`.
    public static let fileDescriptorSet: [UInt8] = Array(
        UnsafeBufferPointer(start: cofferd_descriptor_set(), count: Int(cofferd_descriptor_set_size()))
    )
}
