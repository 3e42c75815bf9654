// Generated protobuf-c code lands here (issue 4).
