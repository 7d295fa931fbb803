# Every image the chart runs, each a target of the root Dockerfile; they share its build stage.
#   docker buildx bake                 # all six, tagged food-<name>:<TAG>
#   docker buildx bake food-orders     # one
#   REGISTRY=registry.example.com/food TAG=$GIT_SHA docker buildx bake --push
# helm/checks/chart.test.ts checks them against the chart's images and commands.

variable "REGISTRY" {
  default = ""
}

# The chart's appVersion: what it pulls when image.tag is empty.
variable "TAG" {
  default = "0.1.0"
}

# ${REGISTRY}/<image>:${TAG}, or <image>:${TAG} without a registry (as the chart's image.registry '').
function "image_tags" {
  params = [image]
  result = [REGISTRY != "" ? "${REGISTRY}/${image}:${TAG}" : "${image}:${TAG}"]
}

group "default" {
  targets = ["services", "food-migrations"]
}

# food-gateway and the four subgraphs' images (the users, meals, orders and payments workers run these too,
# with node dist/worker-main.js on the second port): the Dockerfile's service stage, one target each.
target "services" {
  name = "food-${item.name}"
  matrix = {
    item = [
      { name = "gateway", package = "@food/gateway", ports = "4000" },
      { name = "users", package = "@food/users-subgraph", ports = "4001 9467" },
      { name = "meals", package = "@food/meals-subgraph", ports = "4002 9466" },
      { name = "orders", package = "@food/orders-subgraph", ports = "4003 9464" },
      { name = "payments", package = "@food/payments-subgraph", ports = "4004 9465" },
    ]
  }
  target = "service"
  args   = { PACKAGE = item.package, TITLE = "food-${item.name}", PORTS = item.ports }
  tags   = image_tags("food-${item.name}")
}

target "food-migrations" {
  target = "migrations"
  args   = { PACKAGE = "@food/prisma", TITLE = "food-migrations" }
  tags   = image_tags("food-migrations")
}
