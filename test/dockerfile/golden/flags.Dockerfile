FROM --platform=$BUILDPLATFORM golang AS build
ARG TARGETOS TARGETARCH
RUN --network=none --security=insecure \
    --mount=type=secret,id=npmrc,target=/root/.npmrc,required \
    --mount=type=ssh \
    --mount=type=tmpfs,target=/tmp,size=64m \
    --mount=type=cache,target=/var/cache/apt,sharing=locked,id=apt,mode=0755,uid=1000 \
    --mount=type=bind,from=assets,source=/dist,target=/dist,rw \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build ./...
COPY --link --parents --exclude=*.md --exclude=docs/ --chown=app --chmod=644 src/ ./
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d --keep-git-dir=true --link https://example.com/a.tar.gz /a/

FROM --platform=linux/arm64 alpine AS assets
RUN mkdir /dist
