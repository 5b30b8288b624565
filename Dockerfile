# The ecs-stack-deploy container action image: the static musl binary and a
# CA bundle, nothing else (no shell, no libc, no package manager).
#
# Not built from the repository root: the build context is staged by
# scripts/stage-image-context (target/image-context/, holding this file, the
# release binary and ca-certificates.crt), because nothing can be pulled on
# our build machines, so the binary is compiled beforehand rather than in a
# builder stage. scripts/build-image builds it with podman; the release
# workflow with docker buildx, from the same staged context.
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/ecs-stack-deploy/ecs-stack-deploy

LABEL org.opencontainers.image.title="ecs-stack-deploy" \
      org.opencontainers.image.description="Deploy AWS CloudFormation stacks through change sets and roll out ECS services" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

# The AWS SDK's rustls client loads the platform trust store
# (rustls-native-certs, which finds this Debian path); a scratch image has
# none, so ship the build machine's bundle there.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY ecs-stack-deploy /ecs-stack-deploy

# Exec form with an absolute path: the runner appends `args:` to it and runs
# the container with its own --workdir /github/workspace, so no WORKDIR here.
# No USER either: the runner's workspace mount is owned by the runner's uid
# and GitHub documents that container actions must run as the default (root).
ENTRYPOINT ["/ecs-stack-deploy"]
