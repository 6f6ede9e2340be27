"""The VPC EksGpuCluster creates when the caller brings none.

Private subnets take the first quarters of the CIDR (one per zone), public subnets (NAT and load balancers
only; no public IPs on launch) share the last quarter. NAT: one gateway, or one per zone.
"""

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .args import NatGateways
from .spec import NewVpc


@dataclass(frozen=True)
class Network:
    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    nat_gateway_count: int


def build_network(
    parent: pulumi.Resource, name: str, vpc: NewVpc, cluster_name: str, tags: Mapping[str, str]
) -> Network:
    """The VPC, its subnets, NAT and routes, children of ``parent`` (named ``<name>-...``)."""
    child = pulumi.ResourceOptions(parent=parent)
    net = ipaddress.IPv4Network(vpc.cidr)  # validated: an IPv4 CIDR (config.resolve)
    quarters = list(net.subnets(new_prefix=net.prefixlen + 2))
    publics = list(quarters[3].subnets(new_prefix=net.prefixlen + 4))
    zones = vpc.zones
    the_vpc = aws.ec2.Vpc(
        f"{name}-vpc",
        cidr_block=str(net),
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={**tags, "Name": f"{cluster_name}"},
        opts=child,
    )
    # the default security group allows all traffic between its members: strip every rule
    aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=the_vpc.id, tags=tags, opts=child)
    igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=the_vpc.id, tags=tags, opts=child)
    public_rt = aws.ec2.RouteTable(
        f"{name}-public",
        vpc_id=the_vpc.id,
        routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
        tags={**tags, "Name": f"{cluster_name}-public"},
        opts=child,
    )
    per_zone = vpc.nat_gateways == NatGateways.PER_ZONE
    nats: list[aws.ec2.NatGateway] = []
    private_ids: list[pulumi.Output[str]] = []
    for i, zone in enumerate(zones):
        pub = aws.ec2.Subnet(
            f"{name}-public-{i}",
            vpc_id=the_vpc.id,
            cidr_block=str(publics[i]),
            availability_zone=zone,
            map_public_ip_on_launch=False,
            tags={**tags, "Name": f"{cluster_name}-public-{i}", "kubernetes.io/role/elb": "1"},
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-{i}", subnet_id=pub.id, route_table_id=public_rt.id, opts=child
        )
        if per_zone or i == 0:
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=child)
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=pub.id,
                    tags={**tags, "Name": f"{cluster_name}-nat-{i}"},
                    opts=pulumi.ResourceOptions(parent=parent, depends_on=[igw]),
                )
            )
        priv = aws.ec2.Subnet(
            f"{name}-private-{i}",
            vpc_id=the_vpc.id,
            cidr_block=str(quarters[i]),
            availability_zone=zone,
            tags={**tags, "Name": f"{cluster_name}-private-{i}", "kubernetes.io/role/internal-elb": "1"},
            opts=child,
        )
        rt = aws.ec2.RouteTable(
            f"{name}-private-{i}",
            vpc_id=the_vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[-1].id}],
            tags={**tags, "Name": f"{cluster_name}-private-{i}"},
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-private-{i}", subnet_id=priv.id, route_table_id=rt.id, opts=child
        )
        private_ids.append(priv.id)
    return Network(the_vpc.id, private_ids, len(nats))
