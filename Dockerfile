# Static, non-root image: build with the Go toolchain, ship on distroless.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY enrich ./enrich
COPY sources ./sources
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/whatchanged ./cmd/whatchanged

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/whatchanged /usr/local/bin/whatchanged
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/whatchanged"]
CMD ["serve"]
